"""When an e-mail goes out, and how failed sends are retried."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from clinishare_notify.domain.delivery import after_failure, backoff_seconds, message_id, skip_reason
from clinishare_notify.settings import NotifySettings


def test_email_goes_out_when_enabled_wanted_and_addressed() -> None:
    assert skip_reason(smtp_enabled=True, wants_email=True, address="a@b.c", kind="practitioner") is None
    assert skip_reason(smtp_enabled=True, wants_email=True, address="a@b.c", kind="staff") is None


@pytest.mark.parametrize(("kwargs", "reason"), [
    (dict(smtp_enabled=False, wants_email=True, address="a@b.c", kind="practitioner"), "email_disabled"),
    (dict(smtp_enabled=True, wants_email=False, address="a@b.c", kind="practitioner"), "preference_off"),
    (dict(smtp_enabled=True, wants_email=True, address=None, kind="practitioner"), "no_address"),
    (dict(smtp_enabled=True, wants_email=True, address="p@b.c", kind="patient"), "no_address"),
])
def test_email_skipped(kwargs: dict, reason: str) -> None:
    assert skip_reason(**kwargs) == reason


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(n, base=30, cap=3600) for n in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1920, 3600]


def test_gives_up_after_max_attempts() -> None:
    assert [after_failure(n, max_attempts=3) for n in (1, 2, 3, 4)] == ["pending", "pending", "failed", "failed"]


def test_retries_for_the_whole_window_then_gives_up() -> None:
    day = 86400.0
    assert after_failure(40, age_seconds=day - 1, retry_seconds=day) == "pending"  # no attempt cap by default
    assert after_failure(2, age_seconds=day, retry_seconds=day) == "failed"


def test_one_stable_message_id_per_notification() -> None:
    assert message_id("e1:bob") == message_id("e1:bob") == "<e1.bob@notify.clinishare>"
    assert message_id("e1:bob") != message_id("e1:carol")


def test_settings_defaults_and_secrets() -> None:
    s = NotifySettings(_env_file=None)
    assert (s.service_name, s.port, s.email_max_attempts, s.email_enabled) == ("notify", 8005, None, False)
    assert s.email_retry_seconds == 86400
    assert s.public_base_url == "http://127.0.0.1:8000"
    with pytest.raises(ValidationError):
        NotifySettings(smtp_host="mail", smtp_username="u", smtp_password="changeme")
    with pytest.raises(ValidationError):
        NotifySettings(smtp_host="mail", smtp_username="u")
    ok = NotifySettings(smtp_host="mail", smtp_username="u", smtp_password="a-real-one", smtp_starttls=True)
    assert ok.email_enabled and ok.smtp_port_or_default == 587
