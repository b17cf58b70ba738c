"""The documents API's request and response models (SPEC section 8)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from clinishare_shared.access import NamedRecipient
from clinishare_shared.domain.sharing import expiry_problem

from clinishare_shared.ids import Id

from clinishare_documents.domain.access import AUDIENCES, ShareState, Targets

DocumentId = AccountId = Id
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Audience = Literal["practitioners", "staff"]
MAX_DOCUMENTS_PER_CALL = 100
MAX_TARGETS = 100


class OfficeShare(BaseModel):
    office_id: str
    audience: Audience


class Shares(BaseModel):
    patient_ids: list[str] = []
    practitioner_ids: list[str] = []
    offices: list[OfficeShare] = []

    @classmethod
    def from_state(cls, state: ShareState) -> "Shares":
        return cls(patient_ids=sorted(state.patient_ids), practitioner_ids=sorted(state.practitioner_ids),
                   offices=[OfficeShare(office_id=o, audience=a) for o, a in sorted(state.offices)])  # type: ignore[arg-type]

    def state(self) -> ShareState:
        return ShareState.of(self.patient_ids, self.practitioner_ids,
                             ((o.office_id, o.audience) for o in self.offices))


class DocumentRead(BaseModel):
    id: DocumentId
    owner_id: AccountId
    filename: str
    content_type: str
    size: int
    sha256: str
    patient_id: str | None = Field(description="the workspace patient; null for All Documents")
    labels: list[str] = Field(description="ordinary labels (shown to the owner only)")
    shares: Shares = Field(description="the recipients (shown to the owner only)")
    recipients: list[NamedRecipient] = Field(default=[], description="the recipients named, each with its expiry "
                                                                     "(shown to the owner only)")
    owner_name: str | None = Field(default=None, description="the uploader's name now")
    sharer_name: str | None = Field(default=None, description="on a document shared with you: who shared it")
    created_at: datetime


class DocumentPage(BaseModel):
    items: list[DocumentRead]
    next_cursor: str | None = None


class OfficeTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    office_id: AccountId
    # Checked by the labelling rules, so an unknown audience is refused like any other bad target.
    audience: Annotated[str, Field(max_length=32, json_schema_extra={"enum": list(AUDIENCES)})]


class LabelTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[Label] = Field(default_factory=list, max_length=MAX_TARGETS)
    patient_ids: list[AccountId] = Field(default_factory=list, max_length=MAX_TARGETS)
    practitioner_ids: list[AccountId] = Field(default_factory=list, max_length=MAX_TARGETS)
    offices: list[OfficeTarget] = Field(default_factory=list, max_length=MAX_TARGETS)
    expires_at: datetime | None = Field(default=None, description="add only: RFC 3339, in the future, at most 5 "
                                        "years ahead; the shares named in add expire then")

    def targets(self) -> Targets:
        return Targets(labels=tuple(self.labels), patient_ids=tuple(self.patient_ids),
                       practitioner_ids=tuple(self.practitioner_ids),
                       offices=tuple((o.office_id, o.audience) for o in self.offices))


class LabelRequest(BaseModel):
    """The Label Assignment Window: ordinary labels and share labels for one or many documents."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[DocumentId] = Field(min_length=1, max_length=MAX_DOCUMENTS_PER_CALL)
    add: LabelTargets = Field(default_factory=LabelTargets)
    remove: LabelTargets = Field(default_factory=LabelTargets)

    @model_validator(mode="after")
    def _expiry(self) -> "LabelRequest":
        if self.remove.expires_at is not None:
            raise ValueError("expires_at belongs to add, not remove")
        if (problem := expiry_problem(self.add.expires_at, datetime.now(UTC))) is not None:
            raise ValueError(problem)
        return self


class LabelResult(BaseModel):
    items: list[DocumentRead]
