"""Identity's access rules (``domain.access``), pure: each with the cases that must be refused."""

from __future__ import annotations

from datetime import UTC, datetime

from clinishare_identity.domain.access import (
    is_member, is_party, member_removal_refusal, own_pin_holder, role_in, sees_patient,
)
from clinishare_identity.domain.stored import ConnectionDoc, OfficeDoc, PatientDoc

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OFFICE = OfficeDoc(_id="o1", name="North", owner_id="own", share_pin="P", version=3, created_at=NOW,
                   members=[{"account_id": "own", "role": "practitioner"}, {"account_id": "doc", "role": "practitioner"},
                            {"account_id": "desk", "role": "staff"}])


def test_membership_and_roles() -> None:
    assert role_in(OFFICE, "desk") == "staff" and role_in(OFFICE, "doc") == "practitioner"
    assert is_member(OFFICE, "own") and not is_member(OFFICE, "stranger") and role_in(OFFICE, "stranger") is None


def test_the_owner_removes_anyone_but_themself_and_others_only_leave() -> None:
    assert member_removal_refusal(OFFICE, actor_id="own", account_id="doc") is None
    assert member_removal_refusal(OFFICE, actor_id="doc", account_id="doc") is None  # leaving
    assert member_removal_refusal(OFFICE, actor_id="desk", account_id="desk") is None
    assert member_removal_refusal(OFFICE, actor_id="doc", account_id="desk") == (
        403, "only the office owner may remove other members")
    assert member_removal_refusal(OFFICE, actor_id="own", account_id="own") == (
        409, "the owner cannot leave their own office")
    assert member_removal_refusal(OFFICE, actor_id="doc", account_id="own")[0] == 403  # type: ignore[index]


def test_a_patient_is_seen_by_the_care_team_and_their_own_portal_account_only() -> None:
    patient = PatientDoc(_id="pat", name="n", email="e", email_norm="e", date_of_birth=None, care_team=["doc"],
                         version=1, registered_by="doc", created_at=NOW)
    assert sees_patient(patient, viewer_id="doc", viewer_kind="practitioner")
    assert sees_patient(patient, viewer_id="pat", viewer_kind="patient")
    assert not sees_patient(patient, viewer_id="other", viewer_kind="practitioner")
    assert not sees_patient(patient, viewer_id="other", viewer_kind="patient")  # another patient
    assert not sees_patient(patient, viewer_id="pat", viewer_kind="practitioner")  # the id, not the kind


def _conn(target_kind: str, target_id: str) -> ConnectionDoc:
    return ConnectionDoc(_id="c", owner_id="me", target_kind=target_kind, target_id=target_id,  # type: ignore[typeddict-item]
                         created_at=NOW, deleted_at=None)


def test_the_parties_of_a_connection() -> None:
    to_doc, to_office = _conn("practitioner", "doc"), _conn("office", "o1")
    assert is_party(to_doc, "me", target_office=None) and is_party(to_doc, "doc", target_office=None)
    assert not is_party(to_doc, "stranger", target_office=None)
    assert is_party(to_office, "own", target_office=OFFICE)  # the office's owner
    assert not is_party(to_office, "doc", target_office=OFFICE)  # a member is not a party
    assert not is_party(to_office, "own", target_office=None)  # the office is gone


def test_no_connection_to_a_pin_of_ones_own() -> None:
    assert own_pin_holder("practitioner", "me", None, "me")
    assert own_pin_holder("office", "o1", "me", "me")
    assert not own_pin_holder("practitioner", "doc", None, "me")
    assert not own_pin_holder("office", "o1", "own", "me")  # a member's office is fine
    assert not own_pin_holder("office", "me", "other", "me")  # an office id equal to mine means nothing
