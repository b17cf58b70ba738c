"""The stored documents, one type per collection: what the store writes and hands out (``_outbox`` is
never part of them). Plain dictionaries at run time, so a read costs no validation; responses are
validated once, when ``XRead.from_doc`` builds them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict

FieldDoc = dict[str, Any]  # a FormField as stored (its model_dump); FormRead validates it back


class SharingDoc(TypedDict):
    allow_others: bool
    practitioner_ids: list[str]
    office_ids: list[str]
    author_sees_all_submissions: bool
    others_see_all_submissions: bool


class VersionDoc(TypedDict):
    """One version of a form's questions: an assignment keeps the version the patient was given."""

    version: int
    title: str
    fields: list[FieldDoc]
    created_at: datetime


class FormDoc(TypedDict):
    _id: str
    author_id: str
    title: str
    fields: list[FieldDoc]
    sharing: SharingDoc
    version: int
    revision: int  # counts every write: the ETag and the optimistic check of an edit
    created_at: datetime
    updated_at: datetime
    versions: NotRequired[list[VersionDoc]]  # written, never read with the form (``FormStore.form_versions``)


class SubmissionDoc(TypedDict):
    id: str
    submitted_at: datetime
    answers: dict[str, Any]


class AssignmentDoc(TypedDict):
    _id: str
    form_id: str
    form_version: int
    author_id: str
    practitioner_id: str  # who assigned it
    patient_id: str
    status: Literal["pending", "submitted"]
    created_at: datetime
    submission: SubmissionDoc | None  # stored inside: "at most one submission" is one guarded update


class AccessDoc(TypedDict):
    """One read of a submission by someone other than the practitioner who assigned it."""

    _id: str
    submission_id: str
    form_id: str
    assignment_id: str
    patient_id: str
    owner_id: str
    accessor_id: str
    grant_ids: list[str]
    at: datetime
