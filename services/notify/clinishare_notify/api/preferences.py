"""The caller's notification preferences: e-mail on (the default) or off. The inbox is always on."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, StrictBool

from clinishare_shared.auth import CurrentPrincipal

from clinishare_notify.api.deps import StoreDep

router = APIRouter(prefix="/v1/notification-preferences", tags=["notification preferences"])


class PreferencesRead(BaseModel):
    email: bool


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: StrictBool


@router.get("", summary="My notification preferences")
async def get_preferences(principal: CurrentPrincipal, store: StoreDep) -> PreferencesRead:
    return PreferencesRead(email=await store.wants_email(principal.id))


@router.put("", summary="Set my notification preferences")
async def put_preferences(body: PreferencesUpdate, principal: CurrentPrincipal, store: StoreDep) -> PreferencesRead:
    await store.set_email_preference(principal.id, body.email)
    return PreferencesRead(email=await store.wants_email(principal.id))
