"""The event catalogue (SPEC section 9): the envelope and one pydantic model per event type.

Events are owned by their publisher and carry ids and types only, never PHI (principle 5): no chart
text, document names, form answers or patient names. Consumers import these models; they never copy them.
Membership-like events carry a ``version`` of their aggregate and a snapshot, so a projection can apply
them in any order and a redelivery is a no-op.

Models ignore unknown fields (``extra="ignore"``): a reader of an older catalogue reads a newer event
without failing, and a field a publisher passes by mistake is dropped, never carried on. A new field must
be optional (``clinishare_shared.compat`` fails the build otherwise).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clinishare_shared.context import current_correlation_id
from clinishare_shared.mongo import new_id

SCHEMA_VERSION = 1
EXCHANGE = "clinishare.events"


class EventData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    event_type: ClassVar[str]


class Envelope(BaseModel):
    """What travels on the bus. ``data`` is the JSON form of the type's model. Unknown envelope fields
    (a newer publisher's) are ignored, like unknown data fields."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: str
    source: str
    time: datetime
    subject: str
    data: dict[str, Any]
    correlation_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    def payload(self) -> EventData:
        """The typed data model for this envelope's type."""
        return EVENT_TYPES[self.type].model_validate(self.data)


def make_event(data: EventData, *, source: str, subject: str, correlation_id: str | None = None) -> Envelope:
    return Envelope(
        id=new_id(),
        type=data.event_type,
        source=source,
        time=datetime.now(UTC),
        subject=subject,
        data=data.model_dump(mode="json"),
        correlation_id=correlation_id or current_correlation_id(),
    )


AccountKind = Literal["practitioner", "staff", "patient"]
OfficeRole = Literal["practitioner", "staff"]
Audience = Literal["practitioners", "staff"]


class OfficeMember(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    account_id: str
    role: OfficeRole


class OfficeRecipient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    office_id: str
    audience: Audience


# ---- identity -------------------------------------------------------------------------------------


class AccountRegistered(EventData):
    """A practitioner or staff account (with its work name and e-mail, which are not PHI), or a patient's
    portal account (its id is the patient's id; no name or e-mail travels)."""

    event_type: ClassVar[str] = "identity.account.registered"
    account_id: str
    kind: AccountKind
    name: str | None = None
    email: str | None = None

    @model_validator(mode="after")
    def _no_patient_identity(self) -> "AccountRegistered":
        # a patient's name and e-mail are PHI: they never leave identity
        if self.kind == "patient" and (self.name is not None or self.email is not None):
            raise ValueError("a patient account event carries no name or e-mail")
        return self


class OfficeCreated(EventData):
    event_type: ClassVar[str] = "identity.office.created"
    office_id: str
    owner_id: str
    name: str
    version: int
    members: list[OfficeMember]


class OfficeMemberAdded(EventData):
    event_type: ClassVar[str] = "identity.office.member_added"
    office_id: str
    account_id: str
    role: OfficeRole
    version: int
    members: list[OfficeMember] = Field(description="all members after the change")


class OfficeMemberRemoved(EventData):
    event_type: ClassVar[str] = "identity.office.member_removed"
    office_id: str
    account_id: str
    version: int
    members: list[OfficeMember] = Field(description="all members after the change")


class ConnectionCreated(EventData):
    event_type: ClassVar[str] = "identity.connection.created"
    connection_id: str
    owner_id: str = Field(description="the practitioner who entered the PIN")
    target_kind: Literal["practitioner", "office"]
    target_id: str


class ConnectionDeleted(EventData):
    event_type: ClassVar[str] = "identity.connection.deleted"
    connection_id: str
    owner_id: str
    target_kind: Literal["practitioner", "office"]
    target_id: str
    deleted_by: str


class PatientRegistered(EventData):
    event_type: ClassVar[str] = "identity.patient.registered"
    patient_id: str
    registered_by: str
    version: int
    care_team: list[str]


class PatientCareTeamChanged(EventData):
    event_type: ClassVar[str] = "identity.patient.care_team_changed"
    patient_id: str
    changed_by: str
    version: int
    care_team: list[str] = Field(description="the whole care team after the change")
    added: list[str] = []
    removed: list[str] = []


class SharePinRotated(EventData):
    """A practitioner's or an office's Share PIN was rotated. The PIN itself never travels."""

    event_type: ClassVar[str] = "identity.share_pin.rotated"
    owner_kind: Literal["practitioner", "office"]
    owner_id: str = Field(description="the practitioner or office whose PIN changed")
    rotated_by: str | None = Field(default=None, description="the account that rotated it")


# ---- charts ---------------------------------------------------------------------------------------


class _ChartGrant(EventData):
    grant_id: str
    owner_id: str
    rule: Literal["chart", "patient", "all"]
    chart_id: str | None = None
    patient_id: str | None = None
    practitioner_ids: list[str]
    office_ids: list[str]


class ChartShareGranted(_ChartGrant):
    event_type: ClassVar[str] = "charts.share.granted"
    expires_at: datetime | None = Field(default=None, description="when the grant stops giving access, if ever")


class ChartShareRevoked(_ChartGrant):
    event_type: ClassVar[str] = "charts.share.revoked"


class ChartNoteAdded(EventData):
    event_type: ClassVar[str] = "charts.note.added"
    note_id: str
    chart_id: str
    chart_author_id: str
    author_id: str = Field(description="who wrote the note")


class ChartShareExpired(_ChartGrant):
    """A grant passed its ``expires_at`` (published once, by the sweeper)."""

    event_type: ClassVar[str] = "charts.share.expired"
    expires_at: datetime | None = None


class ChartCreated(EventData):
    event_type: ClassVar[str] = "charts.chart.created"
    chart_id: str
    author_id: str
    patient_id: str


class ChartUpdated(EventData):
    event_type: ClassVar[str] = "charts.chart.updated"
    chart_id: str
    author_id: str
    patient_id: str
    changed_fields: list[str] = Field(default=[], description="names of the fields that changed, not values")


AccessorKind = Literal["practitioner", "staff", "patient"]


class _Accessed(EventData):
    """A read by someone other than the owner (SPEC 10.2), recorded by the owning service."""

    patient_id: str | None = None
    owner_id: str | None = None
    accessor_id: str
    accessor_kind: AccessorKind | None = None
    grant_ids: list[str] = Field(default=[], description="the grants or shares the read went through")


class ChartAccessed(_Accessed):
    event_type: ClassVar[str] = "charts.chart.accessed"
    chart_id: str


# ---- documents ------------------------------------------------------------------------------------


class _DocumentShareChange(EventData):
    document_id: str
    owner_id: str
    workspace_patient_id: str | None = None
    patient_ids: list[str] = []
    practitioner_ids: list[str] = []
    offices: list[OfficeRecipient] = []


class DocumentShared(_DocumentShareChange):
    """The recipients this change added (not those the document already had)."""

    event_type: ClassVar[str] = "documents.shared"
    expires_at: datetime | None = Field(default=None, description="when these shares stop giving access, if ever")


class DocumentUnshared(_DocumentShareChange):
    """The recipients this change removed."""

    event_type: ClassVar[str] = "documents.unshared"


class DocumentShareExpired(_DocumentShareChange):
    """The recipients whose share of the document passed its ``expires_at`` (published once)."""

    event_type: ClassVar[str] = "documents.share.expired"
    expires_at: datetime | None = None


class DocumentUploaded(EventData):
    event_type: ClassVar[str] = "documents.document.uploaded"
    document_id: str
    owner_id: str
    workspace_patient_id: str | None = None
    size: int | None = Field(default=None, description="bytes")


class DocumentDeleted(EventData):
    event_type: ClassVar[str] = "documents.document.deleted"
    document_id: str
    owner_id: str
    workspace_patient_id: str | None = None
    deleted_by: str | None = None


class DocumentAccessed(_Accessed):
    event_type: ClassVar[str] = "documents.document.accessed"
    document_id: str


# ---- forms ----------------------------------------------------------------------------------------


class FormShared(EventData):
    event_type: ClassVar[str] = "forms.shared"
    form_id: str
    author_id: str
    allow_others: bool
    practitioner_ids: list[str]
    office_ids: list[str]
    added_practitioner_ids: list[str] = []
    added_office_ids: list[str] = []


class FormAssigned(EventData):
    event_type: ClassVar[str] = "forms.assigned"
    assignment_id: str
    form_id: str
    form_version: int
    author_id: str
    practitioner_id: str = Field(description="who assigned it")
    patient_id: str


class FormSubmitted(EventData):
    event_type: ClassVar[str] = "forms.submitted"
    submission_id: str
    assignment_id: str
    form_id: str
    form_version: int
    author_id: str
    practitioner_id: str = Field(description="who assigned it")
    patient_id: str
    author_may_see: bool = Field(description="whether the form's author may see this submission")


class FormCreated(EventData):
    event_type: ClassVar[str] = "forms.form.created"
    form_id: str
    author_id: str
    version: int


class FormUpdated(EventData):
    event_type: ClassVar[str] = "forms.form.updated"
    form_id: str
    author_id: str
    version: int = Field(description="the form's version after the change")
    changed_fields: list[str] = Field(default=[], description="names of the fields that changed, not values")


class SubmissionAccessed(_Accessed):
    event_type: ClassVar[str] = "forms.submission.accessed"
    submission_id: str
    form_id: str | None = None


EVENT_TYPES: dict[str, type[EventData]] = {
    m.event_type: m
    for m in (
        AccountRegistered, OfficeCreated, OfficeMemberAdded, OfficeMemberRemoved, ConnectionCreated,
        ConnectionDeleted, PatientRegistered, PatientCareTeamChanged, SharePinRotated, ChartShareGranted,
        ChartShareRevoked, ChartShareExpired, ChartNoteAdded, ChartCreated, ChartUpdated, ChartAccessed,
        DocumentShared, DocumentUnshared, DocumentShareExpired, DocumentUploaded, DocumentDeleted,
        DocumentAccessed, FormShared, FormAssigned, FormSubmitted, FormCreated, FormUpdated,
        SubmissionAccessed,
    )
}

IDENTITY_EVENT_TYPES = sorted(t for t in EVENT_TYPES if t.startswith("identity."))
