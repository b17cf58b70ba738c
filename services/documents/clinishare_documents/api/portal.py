"""The patient portal's view of documents: those shared with this patient."""

from __future__ import annotations

from fastapi import APIRouter

from clinishare_shared.auth import CurrentPatient
from clinishare_shared.deps import ProjectionDep
from clinishare_shared.pagination import PageParams

from clinishare_documents import service
from clinishare_documents.api.deps import StoreDep
from clinishare_documents.domain.schemas import DocumentPage

router = APIRouter(prefix="/v1/portal/documents", tags=["portal"])


@router.get("", response_model=DocumentPage, summary="Documents shared with me (patient)")
async def portal_documents(principal: CurrentPatient, store: StoreDep, projection: ProjectionDep,
                           page: PageParams) -> DocumentPage:
    # A patient's account id is the patient's id.
    docs, cursor = await service.list_documents(store=store, projection=projection, account_id=principal.id,
                                                kind="patient", scope="shared", patient_id=None, label=None,
                                                page=page)
    return DocumentPage(items=await service.present(docs, viewer_id=principal.id, projection=projection),
                        next_cursor=cursor)
