"""The patient portal's view of documents: those shared with this patient."""

from __future__ import annotations

from fastapi import APIRouter

from clinishare_shared.auth import CurrentPatient
from clinishare_shared.pagination import PageParams

from clinishare_documents.api.deps import ProjectionDep, StoreDep, to_read
from clinishare_documents.service import readable
from clinishare_shared.mongo import now_ms
from clinishare_documents.domain.access import reader_keys
from clinishare_documents.domain.schemas import DocumentPage

router = APIRouter(prefix="/v1/portal/documents", tags=["portal"])


@router.get("", response_model=DocumentPage, summary="Documents shared with me (patient)")
async def portal_documents(principal: CurrentPatient, store: StoreDep, projection: ProjectionDep,
                           page: PageParams) -> DocumentPage:
    # A patient's account id is the patient's id.
    keys = reader_keys(principal.id, "patient", {})
    docs = await store.list_shared(keys, patient_id=None, page=page)
    items, cursor = page.page(docs)
    items = await readable(projection=projection, docs=items, account_id=principal.id, kind="patient", now=now_ms())
    return DocumentPage(items=[await to_read(d, principal.id, projection) for d in items], next_cursor=cursor)
