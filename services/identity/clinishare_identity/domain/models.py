"""Request and response schemas. Validation lives here, so bad input is refused before anything runs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from clinishare_shared.ids import Id

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# The upper bound keeps one request from buying unbounded hashing work; the rules that need the e-mail
# (domain.password_rules) are checked with it, so each refusal can name its rule.
Password = Annotated[str, StringConstraints(max_length=1024)]
AccountKind = Literal["practitioner", "staff", "patient"]
Role = Literal["practitioner", "staff"]
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


class AccountPublic(BaseModel):
    id: str
    email: str
    name: str
    kind: AccountKind
    created_at: datetime


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


class Me(AccountPublic):
    offices: list[MyOffice]


class PinPublic(BaseModel):
    pin: str


# ---- offices --------------------------------------------------------------------------------------


class OfficeCreate(_In):
    name: Name


class MemberAdd(_In):
    email: EmailStr
    role: Role


class MemberPublic(BaseModel):
    account_id: str
    name: str
    email: str
    role: Role


class OfficePublic(BaseModel):
    id: str
    name: str
    owner_id: str
    share_pin: str
    members: list[MemberPublic]
    created_at: datetime


def role_fits(kind: str, role: str) -> bool:
    """An office role must be the account's own kind: staff are never practitioner members, and
    patients are never members at all."""
    return kind in ("practitioner", "staff") and kind == role


# ---- connections and the sharing list ------------------------------------------------------------


class ConnectionCreate(_In):
    pin: str = Field(min_length=1, max_length=64)


class ConnectionPublic(BaseModel):
    id: str
    target_kind: Literal["practitioner", "office"]
    target_id: str
    target_name: str
    owner_id: str
    owner_name: str
    direction: Literal["outgoing", "incoming"]
    created_at: datetime


class SharingEntry(BaseModel):
    id: str
    name: str
    via: Via


class SharingListPublic(BaseModel):
    practitioners: list[SharingEntry]
    offices: list[SharingEntry]


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


class PatientPublic(BaseModel):
    id: str
    name: str
    email: str
    date_of_birth: date | None
    care_team: list[str]
    has_portal_account: bool
    created_at: datetime


class InvitePublic(BaseModel):
    invite_token: str
    expires_at: datetime


class PortalActivate(_In):
    invite_token: str = Field(min_length=1, max_length=200)
    password: Password
