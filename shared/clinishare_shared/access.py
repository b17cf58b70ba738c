"""The answer of ``GET /v1/{charts|documents|forms}/{id}/access``, with names from the projection.

Names are read from the identity projection on every request (a renamed practitioner or office shows
the new name at once). Patients' names never leave identity, so a patient entry carries no name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from clinishare_shared.domain.access import Ground, Reader, ReaderKind, Through
from clinishare_shared.projection import IdentityProjection


class AccessVia(BaseModel):
    grant_id: str
    rule: str
    through: Through
    office_id: str | None = None
    expires_at: datetime | None = None


class AccessEntry(BaseModel):
    kind: ReaderKind
    id: str
    name: str | None = None
    via: list[AccessVia]


class AccessList(BaseModel):
    items: list[AccessEntry]


async def access_list(grounds: Mapping[Reader, Sequence[Ground]], projection: IdentityProjection) -> AccessList:
    """Readers with at least one ground, named, sorted by kind then name; each ground once."""
    items = []
    for reader, found in grounds.items():
        if not found:
            continue
        name = None
        if reader.kind != "patient":
            account = await projection.account(reader.id)
            name = account.get("name") if account else None
        via = [AccessVia(grant_id=g.grant_id, rule=g.rule, through=g.through, office_id=g.office_id,
                         expires_at=g.expires_at) for g in dict.fromkeys(found)]
        items.append(AccessEntry(kind=reader.kind, id=reader.id, name=name, via=via))
    items.sort(key=lambda e: (e.kind, (e.name or "").lower(), e.id))
    return AccessList(items=items)


class NamedRecipient(BaseModel):
    """A recipient of a share, named (practitioner and office names are not PHI)."""

    kind: Literal["practitioner", "office", "patient"]
    id: str
    name: str | None = None
    audience: Literal["practitioners", "staff"] | None = None
    expires_at: datetime | None = None


async def named_recipients(projection: IdentityProjection, *, practitioner_ids: Sequence[str] = (),
                           office_ids: Sequence[str] = ()) -> list[NamedRecipient]:
    people = await projection.names(practitioner_ids)
    offices = await projection.office_names(office_ids)
    return ([NamedRecipient(kind="practitioner", id=p, name=people.get(p)) for p in practitioner_ids]
            + [NamedRecipient(kind="office", id=o, name=offices.get(o)) for o in office_ids])
