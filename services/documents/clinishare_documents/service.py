"""Read-side use cases: turn a stored document and the identity projection into the rules' plain data.
The read check, the shared listings and "who can see this" all go through ``domain.access.grounds``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clinishare_shared.domain.access import Ground, Reader
from clinishare_shared.domain.sharing import SharingList
from clinishare_shared.projection import IdentityProjection

from clinishare_documents.domain.access import grounds, who_can_read
from clinishare_documents.store import expiries_of


async def read_grounds(*, projection: IdentityProjection, doc: dict[str, Any], account_id: str, kind: str,
                       now: datetime, roles: dict[str, str] | None = None,
                       sharer: SharingList | None = None) -> list[Ground]:
    """How a reader other than the owner reads the document now (empty: they may not)."""
    if roles is None:
        roles = {} if kind == "patient" else await projection.roles_of(account_id)
    if sharer is None:
        sharer = await projection.sharing_list(doc["owner_id"])
    return grounds(owner_id=doc["owner_id"], keys=doc.get("share_keys", []), expiries=expiries_of(doc),
                   sharer=sharer, account_id=account_id, kind=kind, office_roles=roles, now=now)


async def readable(*, projection: IdentityProjection, docs: list[dict[str, Any]], account_id: str, kind: str,
                   now: datetime) -> list[dict[str, Any]]:
    """Of documents found by recipient key, those the reader can read now (expiry, sharing lists)."""
    roles = {} if kind == "patient" else await projection.roles_of(account_id)
    lists: dict[str, SharingList] = {}
    out = []
    for doc in docs:
        if doc["owner_id"] not in lists:
            lists[doc["owner_id"]] = await projection.sharing_list(doc["owner_id"])
        if await read_grounds(projection=projection, doc=doc, account_id=account_id, kind=kind, now=now,
                              roles=roles, sharer=lists[doc["owner_id"]]):
            out.append(doc)
    return out


async def readers(*, projection: IdentityProjection, doc: dict[str, Any], now: datetime) -> dict[Reader, list[Ground]]:
    """Everyone but the owner who can read the document now, office memberships expanded now."""
    offices = [k.split(":")[1] for k in doc.get("share_keys", []) if k.startswith("office:")]
    return who_can_read(owner_id=doc["owner_id"], keys=doc.get("share_keys", []), expiries=expiries_of(doc),
                        sharer=await projection.sharing_list(doc["owner_id"]),
                        rosters=await projection.office_rosters(offices), now=now)
