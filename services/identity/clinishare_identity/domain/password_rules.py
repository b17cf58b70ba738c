"""The password rules (SPEC 10.3), as a pure function: at least 10 characters, not a commonly used
password, and not containing the e-mail address's local part. Each refusal names its rule."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

MIN_LENGTH = 10


@dataclass(frozen=True)
class PasswordRefused:
    rule: str  # min_length | common | contains_email
    detail: str


@cache
def common_passwords() -> frozenset[str]:
    text = files("clinishare_identity.domain").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _folded(text: str) -> str:
    return "".join(text.split()).casefold()


def password_refusal(password: str, email: str) -> PasswordRefused | None:
    """None if ``password`` may be used by the owner of ``email``, else the first rule it breaks."""
    if len(password) < MIN_LENGTH:
        return PasswordRefused("min_length", f"the password must be at least {MIN_LENGTH} characters long")
    # spaces and case do not make a common password uncommon ("Qwerty Uiop" is "qwertyuiop")
    if password.strip().casefold() in common_passwords() or _folded(password) in common_passwords():
        return PasswordRefused("common", "this password is too commonly used; choose another")
    local = _folded(email.rpartition("@")[0])
    if len(local) >= 3 and local in _folded(password):
        return PasswordRefused("contains_email", "the password must not contain the e-mail address's name part")
    return None
