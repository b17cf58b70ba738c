"""Identity's access rules, pure: who may see and change offices, patients and connections."""

from __future__ import annotations

from clinishare_identity.domain.stored import ConnectionDoc, OfficeDoc, PatientDoc, Role


def role_fits(kind: str, role: str) -> bool:
    """An office role must be the account's own kind: staff are never practitioner members, and
    patients are never members at all."""
    return kind in ("practitioner", "staff") and kind == role


def role_in(office: OfficeDoc, account_id: str) -> Role | None:
    return next((m["role"] for m in office["members"] if m["account_id"] == account_id), None)


def is_member(office: OfficeDoc, account_id: str) -> bool:
    return role_in(office, account_id) is not None


def member_removal_refusal(office: OfficeDoc, *, actor_id: str, account_id: str) -> tuple[int, str] | None:
    """Why ``actor_id`` may not remove ``account_id`` (status, detail), or None: the owner removes anyone
    but themself; any other member may only leave."""
    if account_id != actor_id and office["owner_id"] != actor_id:
        return 403, "only the office owner may remove other members"
    if account_id == office["owner_id"]:
        return 409, "the owner cannot leave their own office"
    return None


def sees_patient(patient: PatientDoc, *, viewer_id: str, viewer_kind: str) -> bool:
    """The care team, and the patient's own portal account."""
    return viewer_id in patient["care_team"] or (viewer_kind == "patient" and viewer_id == patient["_id"])


def is_party(conn: ConnectionDoc, me: str, *, target_office: OfficeDoc | None) -> bool:
    """Either side of a connection: who made it, its practitioner, or the owner of its office."""
    if conn["owner_id"] == me:
        return True
    if conn["target_kind"] == "practitioner":
        return conn["target_id"] == me
    return target_office is not None and target_office["owner_id"] == me


def own_pin_holder(target_kind: str, target_id: str, target_owner_id: str | None, me: str) -> bool:
    """A Share PIN of my own (mine, or an office I own): no connection to it."""
    return (target_kind == "practitioner" and target_id == me) or (target_kind == "office" and target_owner_id == me)
