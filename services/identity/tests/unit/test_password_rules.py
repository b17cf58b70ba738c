import pytest

from clinishare_identity.domain.password_rules import common_passwords, password_refusal

EMAIL = "grace.hopper@clinic.example.org"


@pytest.mark.parametrize("password", ["correct horse 42", "my own quiet pass", "x" * 10 + "7", "Tr0ub4dor&3xyz"])
def test_good_passwords_pass(password):
    assert password_refusal(password, EMAIL) is None


@pytest.mark.parametrize(("password", "rule"), [
    ("password", "min_length"), ("", "min_length"), ("nine char", "min_length"),
    ("1234567890", "common"), ("qwertyuiop", "common"), ("QwertyUiop", "common"), ("qwerty uiop", "common"),
    ("1q2w3e4r5t", "common"),
    ("grace.hopper!!", "contains_email"), ("my GRACE.Hopper pass", "contains_email"),
])
def test_each_rule_is_named(password, rule):
    refused = password_refusal(password, EMAIL)
    assert refused is not None and refused.rule == rule and refused.detail


def test_the_list_is_shipped_and_holds_only_passwords_the_length_rule_lets_through():
    common = common_passwords()
    assert len(common) > 1000
    assert all(len(p) >= 10 and p == p.lower() for p in common)


def test_the_local_part_is_found_anywhere_in_the_password():
    # the README's first draft had Jane (jane@...) choose "jane's own pass": refused
    assert password_refusal("jane's own pass", "jane@patient-mail.org").rule == "contains_email"


def test_a_very_short_local_part_is_not_a_rule():
    # "jo@..." would refuse every password with "jo" in it: too little to be a signal
    assert password_refusal("enjoy the long walk", "jo@clinic.example.org") is None
