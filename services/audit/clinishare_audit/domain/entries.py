"""What each consumed event records in the accounting of disclosures, as pure functions (no I/O).

HIPAA §164.528 asks for: when, who disclosed, to whom, what, and why (here: the sharing rule, and who
attested the patient's consent and when); we add the expiry and every revocation, unsharing and expiry,
and each access by someone other than the owner. Ids only, never PHI.

Chains: a disclosure about one patient goes to that patient's chain (``patient:<id>``). A chart grant
under rule ``all`` names no patient: it goes to its author's chain (``author:<id>``) and is accounted to
every patient of that author at query time (so patients whose charts are written later are covered).
A document shared with nobody who is a patient and not in a workspace names no patient: not recorded.
"""

from __future__ import annotations

from typing import Any

from clinishare_audit.domain.stored import EntryFields
from clinishare_shared.events import (
    ChartAccessed, ChartShareExpired, ChartShareGranted, ChartShareRevoked, DocumentAccessed, DocumentShared,
    DocumentShareExpired, DocumentUnshared, Envelope, EventData, SubmissionAccessed,
)

CHART_EVENTS = {ChartShareGranted: "shared", ChartShareRevoked: "revoked", ChartShareExpired: "expired"}
DOCUMENT_EVENTS = {DocumentShared: "shared", DocumentUnshared: "unshared", DocumentShareExpired: "expired"}
ACCESS_EVENTS = {ChartAccessed: "chart", DocumentAccessed: "document", SubmissionAccessed: "form_submission"}
CONSUMED = [*CHART_EVENTS, *DOCUMENT_EVENTS, *ACCESS_EVENTS]


def patient_chain(patient_id: str) -> str:
    return f"patient:{patient_id}"


def author_chain(author_id: str) -> str:
    return f"author:{author_id}"


def _base(event: Envelope, **fields: Any) -> EntryFields:
    return EntryFields(**{  # type: ignore[typeddict-item]
        "event_id": event.id, "at": event.time, "rule": None, "grant_id": None, "item_id": None,
        "patient_id": None, "practitioner_ids": [], "office_ids": [], "patient_ids": [], "accessor_id": None,
        "accessor_kind": None, "grant_ids": [], "consent_attested_by": None, "consent_attested_at": None,
        "expires_at": None, **fields})


def entries_for(event: Envelope) -> list[EntryFields]:
    """The chain entries (without position or hash) one event records; each names its ``chain``."""
    data: EventData = event.payload()
    if isinstance(data, tuple(CHART_EVENTS)):
        assert isinstance(data, ChartShareGranted | ChartShareRevoked | ChartShareExpired)
        chain = author_chain(data.owner_id) if data.rule == "all" or not data.patient_id \
            else patient_chain(data.patient_id)
        granted = isinstance(data, ChartShareGranted)
        return [_base(event, chain=chain, action=CHART_EVENTS[type(data)], item_type="chart",
                      item_id=data.chart_id, patient_id=None if data.rule == "all" else data.patient_id,
                      rule=data.rule, grant_id=data.grant_id, discloser_id=data.owner_id,
                      practitioner_ids=list(data.practitioner_ids), office_ids=list(data.office_ids),
                      # the sharer attests the patient's consent when granting (SPEC 4)
                      consent_attested_by=data.owner_id if granted else None,
                      consent_attested_at=event.time if granted else None,
                      expires_at=getattr(data, "expires_at", None))]
    if isinstance(data, tuple(DOCUMENT_EVENTS)):
        assert isinstance(data, DocumentShared | DocumentUnshared | DocumentShareExpired)
        patients = sorted({*data.patient_ids, *([data.workspace_patient_id] if data.workspace_patient_id else [])})
        return [_base(event, chain=patient_chain(p), action=DOCUMENT_EVENTS[type(data)], item_type="document",
                      item_id=data.document_id, patient_id=p, rule="share_label", discloser_id=data.owner_id,
                      practitioner_ids=list(data.practitioner_ids),
                      office_ids=[f"{o.office_id}:{o.audience}" for o in data.offices],
                      patient_ids=list(data.patient_ids), expires_at=getattr(data, "expires_at", None))
                for p in patients]
    if isinstance(data, tuple(ACCESS_EVENTS)):
        assert isinstance(data, ChartAccessed | DocumentAccessed | SubmissionAccessed)
        if not data.patient_id:
            return []
        item_id = getattr(data, "chart_id", None) or getattr(data, "document_id", None) or \
            getattr(data, "submission_id", None)
        return [_base(event, chain=patient_chain(data.patient_id), action="accessed",
                      item_type=ACCESS_EVENTS[type(data)], item_id=item_id, patient_id=data.patient_id,
                      discloser_id=data.owner_id, accessor_id=data.accessor_id, accessor_kind=data.accessor_kind,
                      grant_ids=list(data.grant_ids))]
    return []
