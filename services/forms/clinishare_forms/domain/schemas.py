"""Request and response models of the forms API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from clinishare_shared.access import NamedRecipient

from clinishare_shared.ids import Id

from clinishare_forms.domain.fields import FormField, check_field_list
from clinishare_forms.domain.stored import AssignmentDoc, FormDoc, VersionDoc

FormId = Id
AssignmentId = Id
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Fields = Annotated[list[FormField], Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SharingOptions(_In):
    allow_others: bool = False
    practitioner_ids: list[Id] = Field(default_factory=list, max_length=500)
    office_ids: list[Id] = Field(default_factory=list, max_length=500)
    author_sees_all_submissions: bool = False
    others_see_all_submissions: bool = False

    @field_validator("practitioner_ids", "office_ids")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _somebody_selected(self) -> "SharingOptions":
        if self.allow_others and not self.practitioner_ids and not self.office_ids:
            raise ValueError("allow_others is on but nobody is selected: select practitioners or offices")
        return self


class FormCreate(_In):
    title: Title
    fields: Fields
    sharing: SharingOptions = Field(default_factory=SharingOptions)

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: list[Any]) -> list[Any]:
        check_field_list(v)
        return v


class FormUpdate(_In):
    title: Title | None = None
    fields: Fields | None = None
    sharing: SharingOptions | None = None

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: list[Any] | None) -> list[Any] | None:
        if v is not None:
            check_field_list(v)
        return v


class FormRead(BaseModel):
    id: FormId
    title: str
    fields: list[FormField]
    sharing: SharingOptions
    version: int
    author_id: str
    author_name: str | None = Field(default=None, description="the author's name now")
    sharer_name: str | None = Field(default=None, description="on a form shared with you: who shared it")
    recipients: list[NamedRecipient] = Field(default=[], description="the author's recipients, named (author only)")
    can_edit: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_doc(cls, doc: FormDoc, *, viewer_id: str, author_name: str | None,
                 recipients: list[NamedRecipient]) -> Self:
        """As ``viewer_id`` sees it: only the author may edit it and sees its recipients (named now)."""
        mine = doc["author_id"] == viewer_id
        return cls(id=doc["_id"], title=doc["title"], fields=doc["fields"], sharing=doc["sharing"],
                   version=doc["version"], author_id=doc["author_id"], author_name=author_name,
                   sharer_name=None if mine else author_name, recipients=recipients if mine else [], can_edit=mine,
                   created_at=doc["created_at"], updated_at=doc["updated_at"])


class AssignmentCreate(_In):
    patient_id: Id


class AssignmentRead(BaseModel):
    id: AssignmentId
    form_id: FormId
    patient_id: str
    practitioner_id: str
    status: Literal["pending", "submitted"]
    form_version: int
    created_at: datetime

    @classmethod
    def from_doc(cls, doc: AssignmentDoc) -> Self:
        return cls(**_assignment_fields(doc))


def _assignment_fields(doc: AssignmentDoc) -> dict[str, Any]:
    return {"id": doc["_id"], "form_id": doc["form_id"], "patient_id": doc["patient_id"],
            "practitioner_id": doc["practitioner_id"], "status": doc["status"], "form_version": doc["form_version"],
            "created_at": doc["created_at"]}


class PortalForm(AssignmentRead):
    """A pending assignment as the patient sees it: the title and fields of the version they were given."""

    title: str
    fields: list[FormField]

    @classmethod
    def from_doc(cls, doc: AssignmentDoc, version: VersionDoc) -> Self:  # type: ignore[override]
        return cls(**_assignment_fields(doc), title=version["title"], fields=version["fields"])


class SubmissionCreate(_In):
    answers: dict[Annotated[str, StringConstraints(max_length=64)], Any] = Field(max_length=500)


class SubmissionRead(BaseModel):
    id: str
    assignment_id: AssignmentId
    form_id: FormId
    form_version: int
    patient_id: str
    practitioner_id: str
    submitted_at: datetime
    answers: dict[str, Any]

    @classmethod
    def from_doc(cls, doc: AssignmentDoc) -> Self:
        """A submitted assignment's submission (it is stored inside the assignment)."""
        s = doc["submission"]
        assert s is not None, "only a submitted assignment has a submission"
        return cls(id=s["id"], assignment_id=doc["_id"], form_id=doc["form_id"], form_version=doc["form_version"],
                   patient_id=doc["patient_id"], practitioner_id=doc["practitioner_id"],
                   submitted_at=s["submitted_at"], answers=s["answers"])
