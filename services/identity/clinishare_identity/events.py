"""What identity publishes. Each builder returns the envelope that rides in the outbox of the document
it announces. Identity consumes nothing (``consumed()`` is empty)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from clinishare_shared.bus.base import Handler
from clinishare_shared.events import (
    AccountRegistered, ConnectionCreated, ConnectionDeleted, Envelope, OfficeCreated, OfficeMember,
    OfficeMemberAdded, OfficeMemberRemoved, PatientCareTeamChanged, PatientRegistered, SharePinRotated, make_event,
)

SOURCE = "identity"


def consumed() -> dict[str, Handler]:
    """Event type -> handler: identity is the source of identity facts and consumes nothing."""
    return {}


def _members(members: Iterable[Mapping[str, str]]) -> list[OfficeMember]:
    return [OfficeMember(account_id=m["account_id"], role=m["role"]) for m in members]  # type: ignore[arg-type]


def account_registered(account: Mapping[str, Any]) -> Envelope:
    if account["kind"] == "patient":
        # a patient's name and e-mail are PHI: only the id (the patient id) and the kind travel
        data = AccountRegistered(account_id=account["_id"], kind="patient")
    else:
        data = AccountRegistered(account_id=account["_id"], kind=account["kind"], name=account["name"],
                                 email=account["email"])
    return make_event(data, source=SOURCE, subject=account["_id"])


def office_created(office: Mapping[str, Any]) -> Envelope:
    data = OfficeCreated(office_id=office["_id"], owner_id=office["owner_id"], name=office["name"],
                         version=office["version"], members=_members(office["members"]))
    return make_event(data, source=SOURCE, subject=office["_id"])


def office_member_added(office_id: str, account_id: str, role: str, version: int,
                        members: Iterable[Mapping[str, str]]) -> Envelope:
    data = OfficeMemberAdded(office_id=office_id, account_id=account_id, role=role,  # type: ignore[arg-type]
                             version=version, members=_members(members))
    return make_event(data, source=SOURCE, subject=office_id)


def office_member_removed(office_id: str, account_id: str, version: int,
                          members: Iterable[Mapping[str, str]]) -> Envelope:
    data = OfficeMemberRemoved(office_id=office_id, account_id=account_id, version=version,
                               members=_members(members))
    return make_event(data, source=SOURCE, subject=office_id)


def connection_created(conn: Mapping[str, Any]) -> Envelope:
    data = ConnectionCreated(connection_id=conn["_id"], owner_id=conn["owner_id"],
                             target_kind=conn["target_kind"], target_id=conn["target_id"])
    return make_event(data, source=SOURCE, subject=conn["_id"])


def connection_deleted(conn: Mapping[str, Any], deleted_by: str) -> Envelope:
    data = ConnectionDeleted(connection_id=conn["_id"], owner_id=conn["owner_id"],
                             target_kind=conn["target_kind"], target_id=conn["target_id"], deleted_by=deleted_by)
    return make_event(data, source=SOURCE, subject=conn["_id"])


def patient_registered(patient: Mapping[str, Any]) -> Envelope:
    data = PatientRegistered(patient_id=patient["_id"], registered_by=patient["registered_by"],
                             version=patient["version"], care_team=list(patient["care_team"]))
    return make_event(data, source=SOURCE, subject=patient["_id"])


def patient_care_team_changed(patient_id: str, changed_by: str, version: int, care_team: list[str], *,
                              added: Iterable[str] = (), removed: Iterable[str] = ()) -> Envelope:
    data = PatientCareTeamChanged(patient_id=patient_id, changed_by=changed_by, version=version,
                                  care_team=care_team, added=list(added), removed=list(removed))
    return make_event(data, source=SOURCE, subject=patient_id)


def share_pin_rotated(owner_kind: Literal["practitioner", "office"], owner_id: str, *, rotated_by: str) -> Envelope:
    """Who and whose, never the PIN."""
    return make_event(SharePinRotated(owner_kind=owner_kind, owner_id=owner_id, rotated_by=rotated_by),
                      source=SOURCE, subject=owner_id)
