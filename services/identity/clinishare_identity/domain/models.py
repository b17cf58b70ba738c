"""Request and response schemas. Validation lives here, so bad input is refused before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, JsonValue, StringConstraints, field_validator

from clinishare_shared.events import Envelope

from clinishare_shared.ids import Id
from clinishare_identity.domain.access import role_in
from clinishare_identity.domain.stored import AccountDoc, AccountKind, Role, ConnectionDoc, OfficeDoc, PatientDoc
from clinishare_identity.domain.pins import format_pin

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# The upper bound keeps one request from buying unbounded hashing work; the rules that need the e-mail
# (domain.password_rules) are checked with it, so each refusal can name its rule.
Password = Annotated[str, StringConstraints(max_length=1024)]
Via = Literal["office", "pin", "member"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def normalise_email(email: str) -> str:
    """The comparison form of an e-mail address: e-mail is matched case-insensitively everywhere."""
    return email.strip().lower()


# ---- accounts -------------------------------------------------------------------------------------


class AccountCreate(_In):
    email: EmailStr
    password: Password
    name: Name
    kind: Literal["practitioner", "staff"]  # patients get accounts only by portal activation


class AccountRead(BaseModel):
    id: str
    email: str
    name: str
    kind: AccountKind
    created_at: datetime

    @classmethod
    def from_doc(cls, doc: AccountDoc) -> AccountRead:
        return cls(id=doc["_id"], email=doc["email"], name=doc["name"], kind=doc["kind"], created_at=doc["created_at"])


class TokenRequest(_In):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class MyOffice(BaseModel):
    id: str
    name: str
    role: Role
    is_owner: bool


class MeRead(AccountRead):
    offices: list[MyOffice]

    @classmethod
    def from_docs(cls, account: AccountDoc, offices: list[OfficeDoc]) -> MeRead:
        me = account["_id"]
        return cls(id=me, email=account["email"], name=account["name"], kind=account["kind"],
                   created_at=account["created_at"],
                   offices=[MyOffice(id=o["_id"], name=o["name"], role=role, is_owner=o["owner_id"] == me)
                            for o in offices if (role := role_in(o, me)) is not None])


class PinRead(BaseModel):
    pin: str

    @classmethod
    def of(cls, stored_pin: str) -> PinRead:
        return cls(pin=format_pin(stored_pin))


# ---- offices --------------------------------------------------------------------------------------


class OfficeCreate(_In):
    name: Name


class MemberAdd(_In):
    email: EmailStr
    role: Role


class MemberRead(BaseModel):
    account_id: str
    name: str
    email: str
    role: Role


class OfficeRead(BaseModel):
    id: str
    name: str
    owner_id: str
    share_pin: str
    members: list[MemberRead]
    created_at: datetime

    @classmethod
    def from_doc(cls, office: OfficeDoc, accounts: Mapping[str, AccountDoc]) -> OfficeRead:
        """``accounts``: the members' accounts (a member whose account is not there is left out)."""
        members = [MemberRead(account_id=m["account_id"], name=a["name"], email=a["email"], role=m["role"])
                   for m in office["members"] if (a := accounts.get(m["account_id"])) is not None]
        return cls(id=office["_id"], name=office["name"], owner_id=office["owner_id"],
                   share_pin=format_pin(office["share_pin"]), members=members, created_at=office["created_at"])


# ---- connections and the sharing list ------------------------------------------------------------


class ConnectionCreate(_In):
    pin: str = Field(min_length=1, max_length=64)


class ConnectionRead(BaseModel):
    id: str
    target_kind: Literal["practitioner", "office"]
    target_id: str
    target_name: str
    owner_id: str
    owner_name: str
    direction: Literal["outgoing", "incoming"]
    created_at: datetime

    @classmethod
    def from_doc(cls, doc: ConnectionDoc, *, me: str, names: Mapping[str, str]) -> ConnectionRead:
        """``names``: account and office names by id (an unknown one is an empty name)."""
        return cls(id=doc["_id"], target_kind=doc["target_kind"], target_id=doc["target_id"],
                   target_name=names.get(doc["target_id"], ""), owner_id=doc["owner_id"],
                   owner_name=names.get(doc["owner_id"], ""),
                   direction="outgoing" if doc["owner_id"] == me else "incoming", created_at=doc["created_at"])


class SharingEntry(BaseModel):
    id: str
    name: str
    via: Via


class SharingListRead(BaseModel):
    practitioners: list[SharingEntry]
    offices: list[SharingEntry]

    @classmethod
    def of(cls, *, practitioners: Mapping[str, Via], offices: Mapping[str, Via],
           names: Mapping[str, str]) -> SharingListRead:
        """Each entry with its name, sorted by name; an id with no name here (not found) is left out."""
        def entries(vias: Mapping[str, Via]) -> list[SharingEntry]:
            found = [SharingEntry(id=i, name=names[i], via=via) for i, via in vias.items() if i in names]
            return sorted(found, key=lambda e: (e.name.lower(), e.id))

        return cls(practitioners=entries(practitioners), offices=entries(offices))


# ---- patients -------------------------------------------------------------------------------------


class PatientCreate(_In):
    name: Name
    email: EmailStr
    date_of_birth: date | None = None

    @field_validator("date_of_birth")
    @classmethod
    def _not_in_future(cls, v: date | None) -> date | None:
        if v is not None and (v > date.today() or v.year < 1880):
            raise ValueError("date of birth must be a real past date")
        return v


class CareTeamAdd(_In):
    practitioner_id: Id


class PatientRead(BaseModel):
    id: str
    name: str
    email: str
    date_of_birth: date | None
    care_team: list[str]
    has_portal_account: bool
    created_at: datetime

    @classmethod
    def from_doc(cls, doc: PatientDoc, *, has_portal_account: bool) -> PatientRead:
        born = doc.get("date_of_birth")
        return cls(id=doc["_id"], name=doc["name"], email=doc["email"],
                   date_of_birth=date.fromisoformat(born) if born else None, care_team=doc["care_team"],
                   has_portal_account=has_portal_account, created_at=doc["created_at"])


class InviteRead(BaseModel):
    invite_token: str
    expires_at: datetime


class PortalActivate(_In):
    invite_token: str = Field(min_length=1, max_length=200)
    password: Password


# ---- the internal snapshot (``api.internal``) ------------------------------------------------------


class SnapshotFact(BaseModel):
    type: str
    data: dict[str, JsonValue]  # exactly what identity publishes for this fact


class SnapshotPage(BaseModel):
    items: list[SnapshotFact]
    next_cursor: str | None

    @classmethod
    def of(cls, facts: list[Envelope], next_cursor: str | None) -> SnapshotPage:
        return cls(items=[SnapshotFact(type=e.type, data=e.data) for e in facts], next_cursor=next_cursor)
