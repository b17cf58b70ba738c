"""The stored documents: the disclosure entries of the hash chains. A ``TypedDict``: a document read from
MongoDB is a dict already, so typing it costs nothing at run time."""

from __future__ import annotations

from datetime import datetime

from typing_extensions import TypedDict


class EntryFields(TypedDict):
    """What one event records in one chain (``domain.entries``), before it has a position there."""
    chain: str  # ``patient:<id>`` or ``author:<id>``
    event_id: str
    at: datetime
    action: str  # shared | unshared | revoked | expired | accessed
    item_type: str  # chart | document | form_submission
    item_id: str | None
    patient_id: str | None
    rule: str | None
    grant_id: str | None
    discloser_id: str | None
    practitioner_ids: list[str]
    office_ids: list[str]  # ``<office id>:<audience>`` for documents
    patient_ids: list[str]
    accessor_id: str | None
    accessor_kind: str | None
    grant_ids: list[str]
    consent_attested_by: str | None
    consent_attested_at: datetime | None
    expires_at: datetime | None


class DisclosureDoc(EntryFields):
    """``disclosures``: an entry at its position ``seq`` of its chain, hashed over its fields and the
    previous entry's hash (``domain.chain``)."""
    _id: str
    seq: int
    prev_hash: str
    hash: str
