"""What forms publishes (builders: ids and flags only, never titles, fields or answers) and what it
consumes (the identity projection's handlers)."""

from __future__ import annotations

from typing import Any

from clinishare_forms.domain.stored import AccessDoc, AssignmentDoc, FormDoc
from clinishare_shared.bus.base import Handler
from clinishare_shared.events import (
    SubmissionAccessed,
    Envelope, FormAssigned, FormCreated, FormShared, FormSubmitted, FormUpdated, make_event,
)
from clinishare_shared.projection import IdentityProjection

SOURCE = "forms"


def form_created(form: FormDoc) -> Envelope:
    return make_event(FormCreated(form_id=form["_id"], author_id=form["author_id"], version=form["version"]),
                      source=SOURCE, subject=form["_id"])


def form_updated(form: FormDoc, changes: dict[str, Any]) -> Envelope:
    """``changes``: the stored fields that changed (their names travel, never their values)."""
    return make_event(FormUpdated(form_id=form["_id"], author_id=form["author_id"],
                                  version=changes.get("version", form["version"]),
                                  changed_fields=sorted(k for k, v in changes.items()
                                                        if k not in ("updated_at", "version") and v != form.get(k))),
                      source=SOURCE, subject=form["_id"])


def form_shared(form: FormDoc, *, added_practitioner_ids: list[str], added_office_ids: list[str]) -> Envelope:
    sharing = form["sharing"]
    return make_event(FormShared(
        form_id=form["_id"], author_id=form["author_id"], allow_others=sharing["allow_others"],
        practitioner_ids=sharing["practitioner_ids"], office_ids=sharing["office_ids"],
        added_practitioner_ids=added_practitioner_ids, added_office_ids=added_office_ids,
    ), source=SOURCE, subject=form["_id"])


def form_assigned(assignment: AssignmentDoc) -> Envelope:
    return make_event(FormAssigned(
        assignment_id=assignment["_id"], form_id=assignment["form_id"], form_version=assignment["form_version"],
        author_id=assignment["author_id"], practitioner_id=assignment["practitioner_id"],
        patient_id=assignment["patient_id"],
    ), source=SOURCE, subject=assignment["_id"])


def form_submitted(assignment: AssignmentDoc, submission_id: str, *, author_may_see: bool) -> Envelope:
    return make_event(FormSubmitted(
        submission_id=submission_id, assignment_id=assignment["_id"], form_id=assignment["form_id"],
        form_version=assignment["form_version"], author_id=assignment["author_id"],
        practitioner_id=assignment["practitioner_id"], patient_id=assignment["patient_id"],
        author_may_see=author_may_see,
    ), source=SOURCE, subject=assignment["_id"])


def submission_accessed(entry: AccessDoc) -> Envelope:
    data = SubmissionAccessed(submission_id=entry["submission_id"], form_id=entry["form_id"],
                              patient_id=entry["patient_id"], owner_id=entry["owner_id"],
                              accessor_id=entry["accessor_id"], accessor_kind="practitioner",
                              grant_ids=entry["grant_ids"])
    return make_event(data, source=SOURCE, subject=entry["submission_id"])


def consumed(projection: IdentityProjection) -> dict[str, Handler]:
    """Consumed event type -> handler: forms needs offices, connections and care teams (identity.*)."""
    return dict(projection.handlers)
