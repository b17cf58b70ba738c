"""What the documents service publishes, and which consumed event type goes to which handler.

Published (through the outbox, in the same write as the change): ``documents.shared`` with the recipients
a change ADDED and ``documents.unshared`` with those it REMOVED, at most one of each per document per
change. Ids only: never a filename, a label or content (principle 5). Ordinary labels announce nothing.
For analytics (SPEC 10.5): ``documents.document.uploaded`` rides in the inserted document,
``documents.document.deleted`` in the soft delete (after the ``documents.unshared`` it implies).
``documents.share.expired`` rides in the unique insert by which a sweeper claims the expiry;
``documents.document.accessed`` in the access-log entry of a download by someone other than the owner.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clinishare_shared.bus.base import Handler
from clinishare_shared.events import (
    DocumentAccessed, DocumentDeleted, DocumentShared, DocumentShareExpired, DocumentUnshared, DocumentUploaded,
    Envelope, OfficeRecipient, make_event,
)
from clinishare_shared.projection import IdentityProjection

from clinishare_documents.domain.access import ShareState
from clinishare_documents.domain.stored import AccessEntry, Document

SOURCE = "documents"


def _recipients(state: ShareState) -> dict[str, Any]:
    return {
        "patient_ids": sorted(state.patient_ids),
        "practitioner_ids": sorted(state.practitioner_ids),
        "offices": [OfficeRecipient(office_id=o, audience=a) for o, a in sorted(state.offices)],  # type: ignore[arg-type]
    }


def share_events(*, document_id: str, owner_id: str, workspace_patient_id: str | None,
                 added: ShareState, removed: ShareState, expires_at: datetime | None = None) -> list[Envelope]:
    out = []
    common = {"document_id": document_id, "owner_id": owner_id, "workspace_patient_id": workspace_patient_id}
    if added:
        out.append(make_event(DocumentShared(**common, **_recipients(added), expires_at=expires_at), source=SOURCE,
                              subject=document_id))
    if removed:
        out.append(make_event(DocumentUnshared(**common, **_recipients(removed)), source=SOURCE,
                              subject=document_id))
    return out


def share_expired(doc: Document, gone: ShareState, *, expires_at: datetime) -> Envelope:
    data = DocumentShareExpired(document_id=doc.id, owner_id=doc.owner_id, workspace_patient_id=doc.patient_id,
                                expires_at=expires_at, **_recipients(gone))
    return make_event(data, source=SOURCE, subject=doc.id)


def document_accessed(entry: AccessEntry) -> Envelope:
    data = DocumentAccessed(document_id=entry.document_id, patient_id=entry.patient_id, owner_id=entry.owner_id,
                            accessor_id=entry.accessor_id, accessor_kind=entry.accessor_kind,
                            grant_ids=entry.grant_ids)
    return make_event(data, source=SOURCE, subject=entry.document_id)


def uploaded(doc: Document) -> Envelope:
    return make_event(DocumentUploaded(document_id=doc.id, owner_id=doc.owner_id,
                                       workspace_patient_id=doc.patient_id, size=doc.size),
                      source=SOURCE, subject=doc.id)


def deleted(doc: Document, *, deleted_by: str) -> list[Envelope]:
    """The unshare a delete implies (if the document had recipients), then the delete itself."""
    return share_events(document_id=doc.id, owner_id=doc.owner_id, workspace_patient_id=doc.patient_id,
                        added=ShareState(), removed=doc.share_state()) + [
        make_event(DocumentDeleted(document_id=doc.id, owner_id=doc.owner_id, workspace_patient_id=doc.patient_id,
                                   deleted_by=deleted_by), source=SOURCE, subject=doc.id)]


def consumed(projection: IdentityProjection) -> dict[str, Handler]:
    """Consumed event type -> handler: the identity projection (offices, care teams, connections)."""
    return dict(projection.handlers)
