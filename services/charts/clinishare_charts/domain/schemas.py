"""Request and response schemas. Ids are typed; free text is bounded; nothing here does I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator, model_validator,
)

from clinishare_charts.domain.access import Rule
from clinishare_shared.access import NamedRecipient
from clinishare_shared.domain.sharing import expiry_problem
from clinishare_shared.pagination import Page
from clinishare_shared.ids import Id

ChartId = Id
PatientId = Id
AccountId = Id
OfficeId = Id
GrantId = Id
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Body = Annotated[str, StringConstraints(max_length=200_000)]
NoteText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChartCreate(_In):
    patient_id: PatientId
    title: Title
    body: Body = ""


class ChartUpdate(_In):
    title: Title | None = None
    body: Body | None = None


class ChartRead(BaseModel):
    id: ChartId
    author_id: AccountId
    author_name: str | None = Field(default=None, description="the author's name now")
    sharer_name: str | None = Field(default=None, description="on charts shared with you: who shared it")
    patient_id: PatientId
    patient_name: str | None = None
    title: str
    body: str
    created_at: datetime
    updated_at: datetime


ChartPage = Page[ChartRead]


class NoteCreate(_In):
    text: NoteText


class NoteRead(BaseModel):
    id: Id
    chart_id: ChartId
    author_id: AccountId = Field(description="who wrote the note")
    author_name: str | None = Field(default=None, description="the writer's name now")
    text: str
    created_at: datetime


class ChartWithNotes(ChartRead):
    notes: list[NoteRead] = Field(description="oldest first, each with its writer")


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _consent_given(value: bool) -> bool:
    if value is not True:
        raise ValueError("patient_consent must be true: the patient's consent is required to share charts")
    return value


# JSON true and nothing else: not "yes", not 1 (pydantic's lax bool would take both)
ConsentGiven = Annotated[StrictBool, AfterValidator(_consent_given),
                         Field(description="JSON true: the sharer attests the patient's consent",
                               json_schema_extra={"const": True})]


class GrantCreate(_In):
    """A chart grant. It exposes charts only (principle 1): there is no field for anything else."""

    rule: Rule
    chart_id: ChartId | None = None
    patient_id: PatientId | None = None
    practitioner_ids: Annotated[list[AccountId], Field(max_length=200)] = []
    office_ids: Annotated[list[OfficeId], Field(max_length=200)] = []
    patient_consent: ConsentGiven
    expires_at: datetime | None = Field(default=None, description="RFC 3339; in the future, at most 5 years "
                                                                 "ahead; past it the grant gives nothing")

    _dedupe = field_validator("practitioner_ids", "office_ids")(_unique)

    @model_validator(mode="after")
    def _coherent(self) -> "GrantCreate":
        needs = {"chart": ("chart_id",), "patient": ("patient_id",), "all": ()}[self.rule]
        for name in ("chart_id", "patient_id"):
            given = getattr(self, name) is not None
            if name in needs and not given:
                raise ValueError(f"rule {self.rule!r} needs {name}")
            if name not in needs and given:
                raise ValueError(f"rule {self.rule!r} takes no {name}")
        if (problem := expiry_problem(self.expires_at, datetime.now(UTC))) is not None:
            raise ValueError(problem)
        if not self.practitioner_ids and not self.office_ids:
            raise ValueError("name at least one recipient (practitioner_ids or office_ids)")
        return self


class GrantRead(BaseModel):
    id: GrantId
    owner_id: AccountId
    rule: Rule
    chart_id: ChartId | None = None
    patient_id: PatientId | None = None
    practitioner_ids: list[AccountId]
    office_ids: list[OfficeId]
    patient_consent: bool
    consent_attested_by: AccountId
    consent_attested_at: datetime
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    expired_at: datetime | None = None
    recipients: list[NamedRecipient] = Field(default=[], description="every recipient, named")


GrantPage = Page[GrantRead]


class AccessRead(BaseModel):
    """One read of the chart by someone other than its author."""

    id: Id
    accessor_id: AccountId
    accessor_kind: str
    accessor_name: str | None = None
    grant_ids: list[GrantId]
    at: datetime


AccessLogPage = Page[AccessRead]
