"""The Label Assignment Window: labels and share labels for one or many documents, all or nothing."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from clinishare_shared.auth import CurrentPractitioner
from clinishare_shared.deps import AuthorizationHeader, DirectoryDep, ProjectionDep

from clinishare_documents import service
from clinishare_documents.api.deps import SettingsDep, StoreDep
from clinishare_documents.domain.schemas import LabelRequest, LabelResult

router = APIRouter(prefix="/v1/documents", tags=["labels"])


@router.post("/labels", response_model=LabelResult, operation_id="documents.labels.apply",
             summary="Add and remove labels and share labels")
async def label_documents(body: LabelRequest, principal: CurrentPractitioner, store: StoreDep, settings: SettingsDep,
                          projection: ProjectionDep, directory: DirectoryDep,
                          authorization: AuthorizationHeader) -> LabelResult:
    docs = await service.label(store=store, projection=projection, directory=directory, owner_id=principal.id,
                               authorization=authorization, call=body,
                               lease=timedelta(seconds=settings.label_lease_seconds))
    return LabelResult(items=await service.present(docs, viewer_id=principal.id, projection=projection))
