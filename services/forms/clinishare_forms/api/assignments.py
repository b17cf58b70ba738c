"""Administering a form: assign it to a patient in my care; the patient submits their answers once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import TypeAdapter

from clinishare_forms.api.deps import (
    AdministeredForm, CurrentCaller, DirectoryDep, ProjectionDep, StoreDep,
)
from clinishare_forms.domain.access import may_see_submission
from clinishare_forms.domain.fields import FormField, validate_answers
from clinishare_forms.domain.schemas import (
    AssignmentCreate, AssignmentRead, SubmissionCreate, SubmissionRead,
)
from clinishare_shared.mongo import now_ms as now
from clinishare_forms.events import form_assigned, form_submitted
from clinishare_forms.service import live_rule
from clinishare_shared.auth import CurrentPatient
from clinishare_shared.directory import patient_in_care
from clinishare_shared.mongo import new_id
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.ids import PathId

router = APIRouter(tags=["assignments"])
FIELDS = TypeAdapter(list[FormField])


def assignment_read(a: dict[str, Any]) -> AssignmentRead:
    return AssignmentRead(id=a["_id"], form_id=a["form_id"], patient_id=a["patient_id"],
                          practitioner_id=a["practitioner_id"], status=a["status"],
                          form_version=a["form_version"], created_at=a["created_at"])


def submission_read(a: dict[str, Any]) -> SubmissionRead:
    s = a["submission"]
    return SubmissionRead(id=s["id"], assignment_id=a["_id"], form_id=a["form_id"], form_version=a["form_version"],
                          patient_id=a["patient_id"], practitioner_id=a["practitioner_id"],
                          submitted_at=s["submitted_at"], answers=s["answers"])


@router.post("/v1/forms/{form_id}/assignments", status_code=201, response_model=AssignmentRead,
             summary="Assign a form to a patient in my care")
async def assign(form: AdministeredForm, body: AssignmentCreate, caller: CurrentCaller, store: StoreDep,
                 projection: ProjectionDep, directory: DirectoryDep) -> AssignmentRead:
    if not await patient_in_care(projection, directory, patient_id=body.patient_id, practitioner_id=caller.id,
                                 authorization=caller.authorization):
        raise Problem(422, "the patient is not in your care", invalid_ids=[body.patient_id])
    assignment = {
        "_id": new_id(), "form_id": form["_id"], "form_version": form["version"], "author_id": form["author_id"],
        "practitioner_id": caller.id, "patient_id": body.patient_id, "status": "pending",
        "created_at": now(), "submission": None,
    }
    await store.insert_assignment(assignment, form_assigned(assignment))
    return assignment_read(assignment)


@router.post("/v1/assignments/{assignment_id}/submission", status_code=201, response_model=SubmissionRead,
             summary="Submit my answers (patient)")
async def submit(assignment_id: PathId, body: SubmissionCreate, patient: CurrentPatient, store: StoreDep,
                 projection: ProjectionDep) -> SubmissionRead:
    assignment = await store.assignment(assignment_id)
    if assignment is None or assignment["patient_id"] != patient.id:
        raise not_found("assignment")
    if assignment["status"] != "pending":
        raise Problem(409, "this form has already been submitted")
    version = await store.form_version(assignment["form_id"], assignment["form_version"])
    form = await store.form(assignment["form_id"])
    if version is None or form is None:
        raise not_found("assignment")
    answers, errors = validate_answers(FIELDS.validate_python(version["fields"]), body.answers)
    if errors:
        raise Problem(422, "some answers are invalid", errors=errors)

    author_id = form["author_id"]
    author_may_see = may_see_submission(
        await live_rule(form=form, projection=projection), author_id=author_id,
        assigned_by=assignment["practitioner_id"],
        viewer_id=author_id, viewer_offices=await projection.office_ids_of(author_id, role="practitioner"),
    )
    submission = {"id": new_id(), "submitted_at": now(), "answers": answers}
    event = form_submitted(assignment, submission["id"], author_may_see=author_may_see)
    if not await store.submit(assignment_id, submission, event):
        raise Problem(409, "this form has already been submitted")
    return submission_read({**assignment, "submission": submission, "status": "submitted"})
