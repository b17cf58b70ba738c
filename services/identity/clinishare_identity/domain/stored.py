"""The stored documents, one type per collection: what the store writes and hands out (its ``_outbox``
never leaves it). Plain ``TypedDict``s: a document read from MongoDB is already a dict, so typing it costs
nothing at run time, and what a route may read of it is checked statically."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from typing_extensions import NotRequired, TypedDict  # pydantic reads these (the JWKS answer) on 3.11

AccountKind = Literal["practitioner", "staff", "patient"]
Role = Literal["practitioner", "staff"]
TargetKind = Literal["practitioner", "office"]


class AccountDoc(TypedDict):
    """``accounts``: a patient's account has the patient's id as its own."""
    _id: str
    email: str
    email_norm: str
    name: str
    kind: AccountKind
    password_hash: str
    created_at: datetime
    share_pin: NotRequired[str]  # practitioners only


class MemberDoc(TypedDict):
    account_id: str
    role: Role


class OfficeDoc(TypedDict):
    """``offices``: membership is an array with a ``version``, changed only by version-checked updates."""
    _id: str
    name: str
    owner_id: str
    share_pin: str
    members: list[MemberDoc]
    version: int
    created_at: datetime


class ConnectionDoc(TypedDict):
    """``connections``: soft-deleted (``deleted_at``); ``live_key`` exists only while it is live."""
    _id: str
    owner_id: str
    target_kind: TargetKind
    target_id: str
    created_at: datetime
    deleted_at: datetime | None
    live_key: NotRequired[str]
    deleted_by: NotRequired[str]


class InviteDoc(TypedDict):
    token_hash: str  # only the hash of the token is ever stored
    expires_at: datetime
    created_by: str
    created_at: datetime


class PatientDoc(TypedDict):
    """``patients``: the care team is an array with a ``version``, like office membership."""
    _id: str
    name: str
    email: str
    email_norm: str
    date_of_birth: str | None  # ISO date
    care_team: list[str]
    version: int
    registered_by: str
    created_at: datetime
    invite: NotRequired[InviteDoc]


StoredDoc = AccountDoc | OfficeDoc | ConnectionDoc | PatientDoc  # what EVENT_COLLECTIONS hold


class Jwk(TypedDict):
    """A published public key (OKP, Ed25519)."""
    kty: str
    crv: str
    x: str
    kid: str
    use: str
    alg: str


class Jwks(TypedDict):
    """The published key set (``/.well-known/jwks.json``): the signing key first."""
    keys: list[Jwk]


class PublishedKeyDoc(TypedDict):
    """``signing_keys``, ``public:<kid>``: a public key in the JWKS, retired ones until ``expires_at``."""
    _id: str
    kind: Literal["public"]
    kid: str
    jwk: Jwk
    since: datetime
    retired_at: datetime | None
    expires_at: datetime | None
