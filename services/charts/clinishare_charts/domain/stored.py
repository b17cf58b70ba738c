"""The stored documents, one type per collection: what the store writes and hands out (``_outbox`` is
never part of them: the store strips it). Plain dictionaries at run time, so a read costs no validation;
responses are validated once, when ``XRead.from_doc`` builds them."""

from __future__ import annotations

from datetime import datetime
from typing import NotRequired, TypedDict

from clinishare_charts.domain.access import Rule


class ChartDoc(TypedDict):
    _id: str
    author_id: str
    patient_id: str
    patient_name: str | None  # identity's answer when the chart was written: charts are searched by it
    title: str
    body: str
    created_at: datetime
    updated_at: datetime


class NoteDoc(TypedDict):
    _id: str
    chart_id: str
    author_id: str
    text: str
    created_at: datetime


class GrantDoc(TypedDict):
    _id: str
    owner_id: str
    rule: Rule
    chart_id: str | None
    patient_id: str | None  # a ``chart`` grant keeps its chart's patient (for the accounting of disclosures)
    practitioner_ids: list[str]
    office_ids: list[str]
    patient_consent: bool
    consent_attested_by: str
    consent_attested_at: datetime
    created_at: datetime
    revoked_at: datetime | None
    expires_at: NotRequired[datetime | None]  # grants written before expiry existed lack both
    expired_at: NotRequired[datetime | None]


class AccessDoc(TypedDict):
    """One read of a chart by someone other than its author."""

    _id: str
    chart_id: str
    author_id: str
    patient_id: str
    accessor_id: str
    accessor_kind: str
    grant_ids: list[str]
    at: datetime


class ExpiryDoc(TypedDict):
    """The claim that announces a grant's expiry once (its ``_id`` is the grant's)."""

    _id: str
    owner_id: str
    at: datetime
