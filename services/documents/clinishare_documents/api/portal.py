"""The patient portal's view of documents: those shared with this patient."""

from __future__ import annotations

from fastapi import APIRouter

from clinishare_shared.auth import CurrentPatient
from clinishare_shared.pagination import PageParams

from clinishare_documents.api.deps import StoreDep, to_read
from clinishare_documents.domain.rules import reader_keys
from clinishare_documents.domain.schemas import DocumentPage

router = APIRouter(prefix="/v1/portal/documents", tags=["portal"])


@router.get("", response_model=DocumentPage, summary="Documents shared with me (patient)")
async def portal_documents(principal: CurrentPatient, store: StoreDep, page: PageParams) -> DocumentPage:
    # A patient's account id is the patient's id.
    keys = reader_keys(principal.id, "patient", {})
    docs = await store.list_shared(keys, patient_id=None, page=page)
    items, cursor = page.page(docs)
    return DocumentPage(items=[to_read(d, principal.id) for d in items], next_cursor=cursor)
