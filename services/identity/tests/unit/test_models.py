import pytest
from pydantic import ValidationError

from clinishare_identity.domain.access import role_fits
from clinishare_identity.domain.models import (
    AccountCreate, CareTeamAdd, ConnectionCreate, MemberAdd, PatientCreate, PortalActivate, normalise_email,
)

GOOD = {"email": "Dr.Who@Clinic.example.org", "password": "tardis blue 42", "name": " Dr Who ", "kind": "practitioner"}


def test_account_create_accepts_practitioner_and_staff_and_strips_name():
    assert AccountCreate(**GOOD).name == "Dr Who"
    assert AccountCreate(**{**GOOD, "kind": "staff"}).kind == "staff"


@pytest.mark.parametrize("change", [
    {"kind": "patient"},  # patients only through portal activation
    {"kind": "admin"},
    {"password": "x" * 1025},  # bounded hashing work (the rules are checked by the route)
    {"email": "not-an-email"},
    {"name": "   "},
    {"extra": "field"},
])
def test_account_create_rejects(change):
    with pytest.raises(ValidationError):
        AccountCreate(**{**GOOD, **change})


def test_email_is_compared_case_insensitively():
    assert normalise_email(" Dr.Who@Clinic.Example.org ") == "dr.who@clinic.example.org"


def test_role_must_fit_the_account_kind():
    assert role_fits("practitioner", "practitioner")
    assert role_fits("staff", "staff")
    assert not role_fits("staff", "practitioner")
    assert not role_fits("practitioner", "staff")
    assert not role_fits("patient", "staff") and not role_fits("patient", "practitioner")


def test_member_role_is_practitioner_or_staff():
    with pytest.raises(ValidationError):
        MemberAdd(email="a@clinic.example.org", role="owner")


def test_patient_date_of_birth_is_optional_and_not_in_the_future():
    assert PatientCreate(name="A", email="a@mail.example.org").date_of_birth is None
    assert str(PatientCreate(name="A", email="a@mail.example.org", date_of_birth="1980-02-29").date_of_birth) == "1980-02-29"
    for bad in ("2999-01-01", "1980-02-30", "yesterday"):
        with pytest.raises(ValidationError):
            PatientCreate(name="A", email="a@mail.example.org", date_of_birth=bad)


def test_ids_pins_and_passwords_are_bounded():
    with pytest.raises(ValidationError):
        CareTeamAdd(practitioner_id="../me")
    with pytest.raises(ValidationError):
        ConnectionCreate(pin="")
    with pytest.raises(ValidationError):
        PortalActivate(invite_token="t", password="x" * 1025)
