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
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel

from clinishare_shared.events import Envelope
from clinishare_shared.problems import Problem, not_found
from clinishare_identity import events
from clinishare_identity.api.deps import SettingsDep, StoreDep
from clinishare_identity.store import ACCOUNTS, CONNECTIONS, EVENT_COLLECTIONS, OFFICES, PATIENTS

router = APIRouter(tags=["internal"], include_in_schema=False)
PATH = "/v1/internal/identity-snapshot"
KEY_HEADER = "X-Clinishare-Internal-Key"


class SnapshotFact(BaseModel):
    type: str
    data: dict[str, Any]


class SnapshotPage(BaseModel):
    items: list[SnapshotFact]
    next_cursor: str | None


def _as_event(collection: str, doc: dict[str, Any]) -> Envelope:
    if collection == ACCOUNTS:
        return events.account_registered(doc)
    if collection == OFFICES:
        return events.office_created(doc)
    if collection == CONNECTIONS:
        if doc.get("deleted_at") is not None:
            return events.connection_deleted(doc, doc.get("deleted_by") or doc["owner_id"])
        return events.connection_created(doc)
    assert collection == PATIENTS
    return events.patient_registered(doc)


def _check_key(settings: Any, key: str | None) -> None:
    expected = settings.internal_api_key
    if not expected:
        raise not_found("route")
    if key is None or not hmac.compare_digest(key.encode(), expected.encode()):
        raise Problem(401, "this endpoint is for Clinishare's services")


def _parse_cursor(cursor: str | None) -> tuple[int, str | None]:
    if not cursor:
        return 0, None
    collection, sep, after = cursor.partition(":")
    if not sep or collection not in EVENT_COLLECTIONS or not after:
        raise Problem(422, "bad cursor")
    return EVENT_COLLECTIONS.index(collection), after


@router.get(PATH)
async def identity_snapshot(store: StoreDep, settings: SettingsDep,
                            key: Annotated[str | None, Header(alias=KEY_HEADER)] = None,
                            cursor: Annotated[str | None, Query(max_length=300)] = None,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> SnapshotPage:
    """One page of identity's projected facts (accounts, offices, connections, patients, each by id);
    ``next_cursor`` continues, null at the end."""
    _check_key(settings, key)
    index, after = _parse_cursor(cursor)
    items: list[SnapshotFact] = []
    next_cursor: str | None = None
    while index < len(EVENT_COLLECTIONS) and len(items) < limit:
        collection = EVENT_COLLECTIONS[index]
        want = limit - len(items)
        docs = await store.snapshot_docs(collection, after, want)
        items += [SnapshotFact(type=(ev := _as_event(collection, d)).type, data=ev.data) for d in docs]
        if len(docs) == want:
            next_cursor = f"{collection}:{docs[-1]['_id']}"
            break
        index, after = index + 1, None
    return SnapshotPage(items=items, next_cursor=next_cursor)


@router.get(f"{PATH}/high-water")
async def identity_high_water(store: StoreDep, settings: SettingsDep,
                              key: Annotated[str | None, Header(alias=KEY_HEADER)] = None) -> dict[str, int]:
    """``{"high_water": n}``: how many projected events identity's state stands for
    (``IdentityStore.facts_high_water``); a service whose projection counts fewer is behind."""
    _check_key(settings, key)
    return {"high_water": await store.facts_high_water()}
