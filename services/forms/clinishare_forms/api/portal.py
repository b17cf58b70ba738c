"""The patient portal: the forms I have been asked to fill in."""

from __future__ import annotations

from fastapi import APIRouter

from clinishare_forms import service
from clinishare_forms.api.deps import StoreDep
from clinishare_forms.domain.schemas import PortalForm
from clinishare_shared.auth import CurrentPatient
from clinishare_shared.pagination import Page, PageParams

router = APIRouter(prefix="/v1/portal/forms", tags=["portal"])


@router.get("", response_model=Page[PortalForm], summary="My pending forms, as the version I was given")
async def pending_forms(patient: CurrentPatient, store: StoreDep, params: PageParams) -> Page[PortalForm]:
    items, cursor = await service.pending_forms(store=store, patient_id=patient.id, params=params)
    return Page[PortalForm](items=[PortalForm.from_doc(a, v) for a, v in items], next_cursor=cursor)
