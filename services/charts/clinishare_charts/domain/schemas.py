"""Request and response schemas. Ids are typed; free text is bounded; nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator, model_validator,
)

from clinishare_charts.domain.access import Rule
from clinishare_charts.domain.stored import AccessDoc, ChartDoc, GrantDoc, NoteDoc
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

    @classmethod
    def from_doc(cls, doc: ChartDoc, names: Mapping[str, str], *, shared: bool = False) -> Self:
        """``names``: account id -> name now (the projection's); ``shared``: read by someone it is shared
        with, so the author is also named as the sharer."""
        return cls(**_chart_fields(doc, names, shared))


def _chart_fields(doc: ChartDoc, names: Mapping[str, str], shared: bool) -> dict[str, Any]:
    author_name = names.get(doc["author_id"])
    return {"id": doc["_id"], "author_id": doc["author_id"], "author_name": author_name,
            "sharer_name": author_name if shared else None, "patient_id": doc["patient_id"],
            "patient_name": doc.get("patient_name"), "title": doc["title"], "body": doc["body"],
            "created_at": doc["created_at"], "updated_at": doc["updated_at"]}


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

    @classmethod
    def from_doc(cls, doc: NoteDoc, names: Mapping[str, str]) -> Self:
        return cls(id=doc["_id"], chart_id=doc["chart_id"], author_id=doc["author_id"],
                   author_name=names.get(doc["author_id"]), text=doc["text"], created_at=doc["created_at"])


class ChartWithNotes(ChartRead):
    notes: list[NoteRead] = Field(description="oldest first, each with its writer")

    @classmethod
    def from_doc(cls, doc: ChartDoc, names: Mapping[str, str], *, shared: bool = False,
                 notes: Sequence[NoteDoc] = ()) -> Self:
        """Built once, chart and notes together (``names`` covers the chart's and the notes' authors)."""
        return cls(**_chart_fields(doc, names, shared), notes=[NoteRead.from_doc(n, names) for n in notes])


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

    @classmethod
    def from_doc(cls, doc: GrantDoc, recipients: list[NamedRecipient]) -> Self:
        return cls(id=doc["_id"], owner_id=doc["owner_id"], rule=doc["rule"], chart_id=doc.get("chart_id"),
                   patient_id=doc.get("patient_id"), practitioner_ids=doc["practitioner_ids"],
                   office_ids=doc["office_ids"], patient_consent=doc["patient_consent"],
                   consent_attested_by=doc["consent_attested_by"], consent_attested_at=doc["consent_attested_at"],
                   created_at=doc["created_at"], revoked_at=doc.get("revoked_at"),
                   expires_at=doc.get("expires_at"), expired_at=doc.get("expired_at"), recipients=recipients)


GrantPage = Page[GrantRead]


class AccessRead(BaseModel):
    """One read of the chart by someone other than its author."""

    id: Id
    accessor_id: AccountId
    accessor_kind: str
    accessor_name: str | None = None
    grant_ids: list[GrantId]
    at: datetime

    @classmethod
    def from_doc(cls, doc: AccessDoc, names: Mapping[str, str]) -> Self:
        return cls(id=doc["_id"], accessor_id=doc["accessor_id"], accessor_kind=doc["accessor_kind"],
                   accessor_name=names.get(doc["accessor_id"]), grant_ids=doc["grant_ids"], at=doc["at"])


AccessLogPage = Page[AccessRead]
