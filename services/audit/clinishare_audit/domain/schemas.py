"""The disclosures API's response models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from clinishare_shared.access import NamedRecipient
from clinishare_shared.pagination import Page


class DisclosureRead(BaseModel):
    id: str
    at: datetime = Field(description="when it happened")
    action: str = Field(description="shared | unshared | revoked | expired | accessed")
    item_type: str = Field(description="chart | document | form_submission")
    item_id: str | None = Field(default=None, description="null for a grant over all of the author's charts")
    patient_id: str
    rule: str | None = None
    grant_id: str | None = None
    discloser_id: str | None = Field(default=None, description="who disclosed (the owner of the item)")
    discloser_name: str | None = None
    recipients: list[NamedRecipient] = Field(default=[], description="to whom (shares)")
    accessor_id: str | None = Field(default=None, description="who read it (accesses)")
    accessor_kind: str | None = None
    accessor_name: str | None = None
    grant_ids: list[str] = Field(default=[], description="the grants or shares an access went through")
    consent_attested_by: str | None = None
    consent_attested_at: datetime | None = None
    expires_at: datetime | None = None
    chain: str
    seq: int
    hash: str
    prev_hash: str


DisclosurePage = Page[DisclosureRead]


class VerifyRead(BaseModel):
    ok: bool
    entries: int
    first_bad: str | None = Field(default=None, description="the id of the first entry that does not fit")
