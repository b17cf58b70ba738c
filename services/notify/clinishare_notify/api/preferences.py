"""The caller's notification preferences: e-mail on (the default) or off. The inbox is always on."""

from __future__ import annotations

from fastapi import APIRouter

from clinishare_shared.auth import CurrentPrincipal

from clinishare_notify import service
from clinishare_notify.api.deps import StoreDep
from clinishare_notify.domain.schemas import PreferencesRead, PreferencesUpdate

router = APIRouter(prefix="/v1/notification-preferences", tags=["notification preferences"])


@router.get("", summary="My notification preferences")
async def get_preferences(principal: CurrentPrincipal, store: StoreDep) -> PreferencesRead:
    return PreferencesRead(email=await store.wants_email(principal.id))


@router.put("", summary="Set my notification preferences")
async def put_preferences(body: PreferencesUpdate, principal: CurrentPrincipal, store: StoreDep) -> PreferencesRead:
    return PreferencesRead(email=await service.set_email_preference(store=store, account_id=principal.id,
                                                                    email=body.email))
