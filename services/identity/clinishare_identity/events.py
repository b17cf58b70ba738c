"""What identity publishes. Each builder returns the envelope that rides in the outbox of the document
it announces; the use cases (``service``) build them with the documents they write. Identity consumes
nothing (``consumed()`` is empty)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from clinishare_shared.bus.base import Handler
from clinishare_shared.events import (
    AccountRegistered, ConnectionCreated, ConnectionDeleted, Envelope, OfficeCreated, OfficeMember,
    OfficeMemberAdded, OfficeMemberRemoved, PatientCareTeamChanged, PatientRegistered, SharePinRotated, make_event,
)
from clinishare_identity.domain.access import role_in
from clinishare_identity.domain.stored import AccountDoc, ConnectionDoc, MemberDoc, OfficeDoc, PatientDoc

SOURCE = "identity"


def consumed() -> dict[str, Handler]:
    """Event type -> handler: identity is the source of identity facts and consumes nothing."""
    return {}


def _members(members: Iterable[MemberDoc]) -> list[OfficeMember]:
    return [OfficeMember(account_id=m["account_id"], role=m["role"]) for m in members]


def account_registered(account: AccountDoc) -> Envelope:
    if account["kind"] == "patient":
        # a patient's name and e-mail are PHI: only the id (the patient id) and the kind travel
        data = AccountRegistered(account_id=account["_id"], kind="patient")
    else:
        data = AccountRegistered(account_id=account["_id"], kind=account["kind"], name=account["name"],
                                 email=account["email"])
    return make_event(data, source=SOURCE, subject=account["_id"])


def office_created(office: OfficeDoc) -> Envelope:
    data = OfficeCreated(office_id=office["_id"], owner_id=office["owner_id"], name=office["name"],
                         version=office["version"], members=_members(office["members"]))
    return make_event(data, source=SOURCE, subject=office["_id"])


def office_member_added(office: OfficeDoc, account_id: str) -> Envelope:
    """``office`` as the write leaves it (its new version and members)."""
    role = role_in(office, account_id)
    assert role is not None, "the added account is a member of the office as written"
    data = OfficeMemberAdded(office_id=office["_id"], account_id=account_id, role=role, version=office["version"],
                             members=_members(office["members"]))
    return make_event(data, source=SOURCE, subject=office["_id"])


def office_member_removed(office: OfficeDoc, account_id: str) -> Envelope:
    """``office`` as the write leaves it."""
    data = OfficeMemberRemoved(office_id=office["_id"], account_id=account_id, version=office["version"],
                               members=_members(office["members"]))
    return make_event(data, source=SOURCE, subject=office["_id"])


def connection_created(conn: ConnectionDoc) -> Envelope:
    data = ConnectionCreated(connection_id=conn["_id"], owner_id=conn["owner_id"],
                             target_kind=conn["target_kind"], target_id=conn["target_id"])
    return make_event(data, source=SOURCE, subject=conn["_id"])


def connection_deleted(conn: ConnectionDoc, deleted_by: str) -> Envelope:
    data = ConnectionDeleted(connection_id=conn["_id"], owner_id=conn["owner_id"],
                             target_kind=conn["target_kind"], target_id=conn["target_id"], deleted_by=deleted_by)
    return make_event(data, source=SOURCE, subject=conn["_id"])


def patient_registered(patient: PatientDoc) -> Envelope:
    data = PatientRegistered(patient_id=patient["_id"], registered_by=patient["registered_by"],
                             version=patient["version"], care_team=list(patient["care_team"]))
    return make_event(data, source=SOURCE, subject=patient["_id"])


def patient_care_team_changed(patient: PatientDoc, changed_by: str, *, added: Iterable[str] = (),
                              removed: Iterable[str] = ()) -> Envelope:
    """``patient`` as the write leaves it (its new version and care team)."""
    data = PatientCareTeamChanged(patient_id=patient["_id"], changed_by=changed_by, version=patient["version"],
                                  care_team=list(patient["care_team"]), added=list(added), removed=list(removed))
    return make_event(data, source=SOURCE, subject=patient["_id"])


def share_pin_rotated(owner_kind: Literal["practitioner", "office"], owner_id: str, *, rotated_by: str) -> Envelope:
    """Who and whose, never the PIN."""
    return make_event(SharePinRotated(owner_kind=owner_kind, owner_id=owner_id, rotated_by=rotated_by),
                      source=SOURCE, subject=owner_id)
