"""Who is told about an event: pure functions over the event's data and the offices it names.

Office members are whoever the identity projection says are members when the event is processed
(``Office`` snapshots handed in by the caller). The actor is never told of their own action, and every
recipient is told once, however many ways the event reaches them (named and through an office).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from clinishare_shared.events import (
    ChartNoteAdded, ChartShareExpired, ChartShareGranted, ChartShareRevoked, ConnectionCreated, DocumentShared,
    DocumentShareExpired, DocumentUnshared, EventData, FormAssigned, FormShared, FormSubmitted,
)

RecipientKind = Literal["practitioner", "staff", "patient"]
AUDIENCE_ROLE: dict[str, str] = {"practitioners": "practitioner", "staff": "staff"}


@dataclass(frozen=True)
class Office:
    members: Mapping[str, str] = field(default_factory=dict)  # account id -> role ("practitioner" | "staff")
    owner_id: str | None = None

    def with_role(self, role: str) -> list[str]:
        return [a for a, r in self.members.items() if r == role]


@dataclass(frozen=True)
class Recipient:
    account_id: str
    kind: RecipientKind


Offices = Mapping[str, Office]


def _unique(candidates: Iterable[Recipient], *, actor_id: str | None) -> list[Recipient]:
    seen: set[str] = set()
    out: list[Recipient] = []
    for r in candidates:
        if r.account_id == actor_id or r.account_id in seen:
            continue
        seen.add(r.account_id)
        out.append(r)
    return out


def _practitioners(ids: Iterable[str]) -> list[Recipient]:
    return [Recipient(i, "practitioner") for i in ids]


def _office_members(offices: Offices, office_ids: Iterable[str], role: str) -> list[Recipient]:
    kind: RecipientKind = "staff" if role == "staff" else "practitioner"
    return [Recipient(a, kind) for o in office_ids for a in offices.get(o, Office()).with_role(role)]


def chart_share(data: ChartShareGranted, offices: Offices) -> list[Recipient]:
    """Named practitioners and the current practitioner members of the recipient offices."""
    return _unique([*_practitioners(data.practitioner_ids),
                    *_office_members(offices, data.office_ids, "practitioner")], actor_id=data.owner_id)


def document_share(data: DocumentShared, offices: Offices) -> list[Recipient]:
    """Named practitioners, current office members whose role matches the audience, and named patients
    (who see the document in the portal)."""
    members = [r for o in data.offices for r in _office_members(offices, [o.office_id], AUDIENCE_ROLE[o.audience])]
    patients = [Recipient(p, "patient") for p in data.patient_ids]
    return _unique([*_practitioners(data.practitioner_ids), *members, *patients], actor_id=data.owner_id)


def form_share(data: FormShared, offices: Offices) -> list[Recipient]:
    """Only those this change gave access: the added practitioners and the current practitioner members
    of the added offices, and only while the form is shared at all (``allow_others``)."""
    if not data.allow_others:
        return []
    return _unique([*_practitioners(data.added_practitioner_ids),
                    *_office_members(offices, data.added_office_ids, "practitioner")], actor_id=data.author_id)


def form_assigned(data: FormAssigned) -> list[Recipient]:
    """The patient, whose portal account id is the patient id."""
    return _unique([Recipient(data.patient_id, "patient")], actor_id=data.practitioner_id)


def form_submitted(data: FormSubmitted) -> list[Recipient]:
    """The practitioner who assigned the form, always; the form's author if they may see submissions."""
    candidates = _practitioners([data.practitioner_id] + ([data.author_id] if data.author_may_see else []))
    return _unique(candidates, actor_id=data.patient_id)


def note_added(data: ChartNoteAdded) -> list[Recipient]:
    """The chart's author, unless they wrote the note themselves."""
    return _unique(_practitioners([data.chart_author_id]), actor_id=data.author_id)


def connection_created(data: ConnectionCreated, offices: Offices) -> list[Recipient]:
    """The practitioner connected to; for an office, its owner (who holds and rotates the office PIN).
    An office whose owner the projection does not know yet falls back to its practitioner members, so
    the notice is not lost."""
    if data.target_kind == "practitioner":
        candidates = _practitioners([data.target_id])
    else:
        office = offices.get(data.target_id, Office())
        candidates = (_practitioners([office.owner_id]) if office.owner_id
                      else _office_members(offices, [data.target_id], "practitioner"))
    return _unique(candidates, actor_id=data.owner_id)


def share_ended(data: ChartShareRevoked | ChartShareExpired | DocumentUnshared | DocumentShareExpired,
                offices: Offices) -> list[Recipient]:
    """Revoked, unshared or expired (SPEC 10.1): everyone the share named (current office members by
    role), and for an expiry also the sharer, whose share ended without them doing anything."""
    if isinstance(data, ChartShareRevoked | ChartShareExpired):
        told = chart_share(ChartShareGranted(**data.model_dump(include=set(ChartShareGranted.model_fields))), offices)
    else:
        told = document_share(DocumentShared(**data.model_dump(include=set(DocumentShared.model_fields))), offices)
    if isinstance(data, ChartShareExpired | DocumentShareExpired):
        told = _unique([Recipient(data.owner_id, "practitioner"), *told], actor_id=None)
    return told


ENDED = (ChartShareRevoked, ChartShareExpired, DocumentUnshared, DocumentShareExpired)


def offices_needed(data: EventData) -> list[str]:
    """The offices whose current members (or owner) resolution needs for this event."""
    if isinstance(data, ChartShareGranted | ChartShareRevoked | ChartShareExpired):
        return list(data.office_ids)
    if isinstance(data, DocumentShared | DocumentUnshared | DocumentShareExpired):
        return [o.office_id for o in data.offices]
    if isinstance(data, FormShared):
        return list(data.added_office_ids) if data.allow_others else []
    if isinstance(data, ConnectionCreated) and data.target_kind == "office":
        return [data.target_id]
    return []


def recipients(data: EventData, offices: Offices) -> list[Recipient]:
    """Dispatch on the event's type. Types notify does not tell anyone about give no recipients."""
    if isinstance(data, ChartShareGranted):
        return chart_share(data, offices)
    if isinstance(data, DocumentShared):
        return document_share(data, offices)
    if isinstance(data, ENDED):
        return share_ended(data, offices)  # type: ignore[arg-type]
    if isinstance(data, FormShared):
        return form_share(data, offices)
    if isinstance(data, FormAssigned):
        return form_assigned(data)
    if isinstance(data, FormSubmitted):
        return form_submitted(data)
    if isinstance(data, ChartNoteAdded):
        return note_added(data)
    if isinstance(data, ConnectionCreated):
        return connection_created(data, offices)
    return []
