"""The stored documents, one model per collection: what the store hands out and takes in (no I/O here).

``documents``: a document's metadata. Its recipients are kept twice: ``shares`` (what the owner sees) and
``share_keys`` (one string per recipient, multikey-indexed) so "documents shared with me" is one indexed
``$in`` over the reader's keys. ``label_lock`` is a label call's reservation (see ``LabelIntent``).
``document_label_intents``: a label call's whole validated change set, the commit point of the call.
``document_accesses``: the access log (downloads by someone other than the owner).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clinishare_shared.events import Envelope

from clinishare_documents.domain.access import ShareState, share_keys


class Stored(BaseModel):
    """A stored document: ``_id`` is ``id`` here; fields the model does not name (``_outbox``) are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(alias="_id")

    def to_mongo(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class OfficeShare(BaseModel):
    office_id: str
    audience: Literal["practitioners", "staff"]


class Shares(BaseModel):  # a document's recipients, as stored and as its owner reads them
    patient_ids: list[str] = []
    practitioner_ids: list[str] = []
    offices: list[OfficeShare] = []

    @classmethod
    def of(cls, state: ShareState) -> "Shares":
        return cls(patient_ids=sorted(state.patient_ids), practitioner_ids=sorted(state.practitioner_ids),
                   offices=[OfficeShare(office_id=o, audience=a) for o, a in sorted(state.offices)])  # type: ignore[arg-type]

    def state(self) -> ShareState:
        return ShareState.of(self.patient_ids, self.practitioner_ids, ((o.office_id, o.audience) for o in self.offices))


class Expiry(BaseModel):
    key: str
    expires_at: datetime


def expiry_list(expiries: dict[str, datetime]) -> list[Expiry]:
    return [Expiry(key=k, expires_at=v) for k, v in sorted(expiries.items())]


class Reservation(BaseModel):
    call: str
    until: datetime


class Document(Stored):
    owner_id: str
    filename: str = ""  # dropped on delete
    content_type: str
    size: int
    sha256: str
    file_id: str
    patient_id: str | None = None
    labels: list[str] = []
    shares: Shares = Shares()
    share_keys: list[str] = []
    expiries: list[Expiry] = []
    version: int = 1
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    label_lock: Reservation | None = None

    def share_state(self) -> ShareState:
        return self.shares.state()

    def expiry_map(self) -> dict[str, datetime]:
        """Recipient key -> when its share expires (recipients without an expiry are not listed)."""
        return {e.key: e.expires_at for e in self.expiries}


class PlannedDocument(BaseModel):
    """One document's part of a label call: its state after the call and the events announcing it."""

    document_id: str
    version: int  # the version the call's reservation left: the change applies only on top of it
    labels: list[str]
    shares: Shares
    expiries: list[Expiry]
    events: list[Envelope] = []

    @property
    def share_keys(self) -> list[str]:
        return share_keys(self.shares.state())


class LabelIntent(Stored):
    """A label call's commit point. Inserted once every document it changes is reserved; from then on the
    change is rolled forward (by the call, else by the sweeper) until every document carries it.
    ``aborted``: the sweeper fenced off a call whose reservations outlived their lease before it got here."""

    owner_id: str = ""
    created_at: datetime
    documents: list[PlannedDocument] = []
    aborted: bool = False
    done_at: datetime | None = None


class AccessEntry(Stored):
    document_id: str
    owner_id: str
    patient_id: str | None = None
    accessor_id: str
    accessor_kind: str
    grant_ids: list[str]
    at: datetime
