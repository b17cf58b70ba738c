"""Administering a form: assign it to a patient in my care; the patient submits their answers once."""

from __future__ import annotations

from fastapi import APIRouter

from clinishare_forms import service
from clinishare_forms.api.deps import AdministeredForm, CurrentCaller, DirectoryDep, ProjectionDep, StoreDep
from clinishare_forms.domain.schemas import AssignmentCreate, AssignmentRead, SubmissionCreate, SubmissionRead
from clinishare_shared.auth import CurrentPatient
from clinishare_shared.ids import PathId

router = APIRouter(tags=["assignments"])


@router.post("/v1/forms/{form_id}/assignments", status_code=201, response_model=AssignmentRead,
             summary="Assign a form to a patient in my care")
async def assign(form: AdministeredForm, body: AssignmentCreate, caller: CurrentCaller, store: StoreDep,
                 projection: ProjectionDep, directory: DirectoryDep) -> AssignmentRead:
    assignment = await service.assign(store=store, projection=projection, directory=directory, form=form,
                                      caller=caller, patient_id=body.patient_id)
    return AssignmentRead.from_doc(assignment)


@router.post("/v1/assignments/{assignment_id}/submission", status_code=201, response_model=SubmissionRead,
             summary="Submit my answers (patient)")
async def submit(assignment_id: PathId, body: SubmissionCreate, patient: CurrentPatient, store: StoreDep,
                 projection: ProjectionDep) -> SubmissionRead:
    submitted = await service.submit(store=store, projection=projection, assignment_id=assignment_id,
                                     patient_id=patient.id, answers=body.answers)
    return SubmissionRead.from_doc(submitted)
