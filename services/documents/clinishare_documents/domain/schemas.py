"""The documents API's request and response models (SPEC section 8)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from clinishare_shared.access import NamedRecipient
from clinishare_shared.domain.sharing import expiry_problem

from clinishare_shared.ids import Id

from clinishare_documents.domain.access import AUDIENCES, Targets
from clinishare_documents.domain.stored import Document, Shares

DocumentId = AccountId = Id
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Audience = Literal["practitioners", "staff"]
MAX_DOCUMENTS_PER_CALL = 100
MAX_TARGETS = 100


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

    @classmethod
    def from_doc(cls, doc: Document, *, viewer_id: str, names: Mapping[str, str],
                 office_names: Mapping[str, str]) -> "DocumentRead":
        """The owner sees labels and recipients (named); a recipient sees the document and who shared it,
        not who else has it. ``names``: account id -> name now (the owner's and the practitioners')."""
        owner = doc.owner_id == viewer_id
        owner_name = names.get(doc.owner_id)
        shares, recipients = Shares(), []
        if owner:
            state = doc.share_state()
            shares = Shares.of(state)
            expiries = doc.expiry_map()
            recipients = (
                [NamedRecipient(kind="patient", id=p, expires_at=expiries.get(f"patient:{p}"))
                 for p in sorted(state.patient_ids)]
                + [NamedRecipient(kind="practitioner", id=p, name=names.get(p),
                                  expires_at=expiries.get(f"practitioner:{p}")) for p in sorted(state.practitioner_ids)]
                + [NamedRecipient(kind="office", id=o, name=office_names.get(o), audience=a,  # type: ignore[arg-type]
                                  expires_at=expiries.get(f"office:{o}:{a}")) for o, a in sorted(state.offices)])
        return cls(id=doc.id, owner_id=doc.owner_id, filename=doc.filename, content_type=doc.content_type,
                   size=doc.size, sha256=doc.sha256, patient_id=doc.patient_id,
                   labels=list(doc.labels) if owner else [], shares=shares, recipients=recipients,
                   owner_name=owner_name, sharer_name=None if owner else owner_name, created_at=doc.created_at)


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
