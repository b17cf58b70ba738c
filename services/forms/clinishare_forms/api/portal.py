"""The patient portal: the forms I have been asked to fill in."""

from __future__ import annotations

from fastapi import APIRouter

from clinishare_forms.api.deps import StoreDep
from clinishare_forms.domain.schemas import PortalForm
from clinishare_shared.auth import CurrentPatient
from clinishare_shared.pagination import Page, PageParams

router = APIRouter(prefix="/v1/portal/forms", tags=["portal"])


@router.get("", response_model=Page[PortalForm], summary="My pending forms, as the version I was given")
async def pending_forms(patient: CurrentPatient, store: StoreDep, params: PageParams) -> Page[PortalForm]:
    docs, cursor = params.page(await store.pending_for_patient(patient.id, params))
    versions: dict[tuple[str, int], dict] = {}
    items = []
    for a in docs:
        key = (a["form_id"], a["form_version"])
        if key not in versions:
            versions[key] = await store.form_version(*key) or {}
        v = versions[key]
        if not v:
            continue
        items.append(PortalForm(id=a["_id"], form_id=a["form_id"], patient_id=a["patient_id"],
                                practitioner_id=a["practitioner_id"], status=a["status"],
                                form_version=a["form_version"], created_at=a["created_at"],
                                title=v["title"], fields=v["fields"]))
    return Page[PortalForm](items=items, next_cursor=cursor)
