"""The disclosures API's response models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from collections.abc import Mapping

from clinishare_audit.domain.stored import DisclosureDoc
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

    @classmethod
    def from_doc(cls, d: DisclosureDoc, *, patient_id: str, people: Mapping[str, str],
                 offices: Mapping[str, str]) -> DisclosureRead:
        """``patient_id``: whose accounting this is (an entry under rule ``all`` names no patient);
        ``people`` and ``offices``: names by id (an unknown one has none)."""
        recipients = [NamedRecipient(kind="practitioner", id=p, name=people.get(p)) for p in d["practitioner_ids"]]
        for key in d["office_ids"]:
            office_id, _, audience = key.partition(":")
            recipients.append(NamedRecipient(kind="office", id=office_id, name=offices.get(office_id),
                                             audience=audience or None))  # type: ignore[arg-type]
        recipients += [NamedRecipient(kind="patient", id=p) for p in d["patient_ids"]]
        return cls(
            id=d["_id"], at=d["at"], action=d["action"], item_type=d["item_type"], item_id=d.get("item_id"),
            patient_id=d.get("patient_id") or patient_id, rule=d.get("rule"), grant_id=d.get("grant_id"),
            discloser_id=d.get("discloser_id"), discloser_name=people.get(d.get("discloser_id") or ""),
            recipients=recipients, accessor_id=d.get("accessor_id"), accessor_kind=d.get("accessor_kind"),
            accessor_name=people.get(d.get("accessor_id") or ""), grant_ids=d.get("grant_ids", []),
            consent_attested_by=d.get("consent_attested_by"), consent_attested_at=d.get("consent_attested_at"),
            expires_at=d.get("expires_at"), chain=d["chain"], seq=d["seq"], hash=d["hash"], prev_hash=d["prev_hash"])


DisclosurePage = Page[DisclosureRead]


class VerifyRead(BaseModel):
    ok: bool
    entries: int
    first_bad: str | None = Field(default=None, description="the id of the first entry that does not fit")
