"""The identity snapshot other services rebuild their identity projection from (``clinishare_shared.catchup``):
every projected fact as the event that would state it now, paged. Internal: the gateway routes no
``/v1/internal`` path, it is left out of the public OpenAPI document, and it answers only a caller that
presents the shared ``INTERNAL_API_KEY`` (unset: the endpoint is off, 404).

Each fact is ``{type, data}`` with ``data`` exactly what identity publishes (``events.py``'s builders over
the current document: an office's members and version, a patient's care team and version, a connection
live or deleted, an account's kind and, for practitioners and staff, the name and e-mail their
``identity.account.registered`` carries), so a snapshot holds no PHI beyond what identity's events carry
and a consumer applies it through the same version-checked handlers as the events themselves.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Query

from clinishare_shared.problems import Problem, not_found
from clinishare_identity import service
from clinishare_identity.api.deps import SettingsDep, StoreDep
from clinishare_identity.domain.models import SnapshotPage
from clinishare_identity.settings import IdentitySettings
from clinishare_identity.store import EVENT_COLLECTIONS

router = APIRouter(tags=["internal"], include_in_schema=False)
PATH = "/v1/internal/identity-snapshot"
KEY_HEADER = "X-Clinishare-Internal-Key"


def _check_key(settings: IdentitySettings, key: str | None) -> None:
    expected = settings.internal_api_key
    if not expected:
        raise not_found("route")
    if key is None or not hmac.compare_digest(key.encode(), expected.encode()):
        raise Problem(401, "this endpoint is for Clinishare's services")


def _parse_cursor(cursor: str | None) -> tuple[str, str | None]:
    if not cursor:
        return EVENT_COLLECTIONS[0], None
    collection, sep, after = cursor.partition(":")
    if not sep or collection not in EVENT_COLLECTIONS or not after:
        raise Problem(422, "bad cursor")
    return collection, after


@router.get(PATH)
async def identity_snapshot(store: StoreDep, settings: SettingsDep,
                            key: Annotated[str | None, Header(alias=KEY_HEADER)] = None,
                            cursor: Annotated[str | None, Query(max_length=300)] = None,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> SnapshotPage:
    """One page of identity's projected facts (accounts, offices, connections, patients, each by id);
    ``next_cursor`` continues, null at the end."""
    _check_key(settings, key)
    collection, after = _parse_cursor(cursor)
    facts, next_cursor = await service.snapshot(store=store, collection=collection, after=after, limit=limit)
    return SnapshotPage.of(facts, next_cursor)


@router.get(f"{PATH}/high-water")
async def identity_high_water(store: StoreDep, settings: SettingsDep,
                              key: Annotated[str | None, Header(alias=KEY_HEADER)] = None) -> dict[str, int]:
    """``{"high_water": n}``: how many projected events identity's state stands for
    (``IdentityStore.facts_high_water``); a service whose projection counts fewer is behind."""
    _check_key(settings, key)
    return {"high_water": await store.facts_high_water()}
