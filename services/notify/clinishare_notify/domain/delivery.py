"""E-mail delivery rules: whether a notification is e-mailed at all, and when a failed send is retried."""

from __future__ import annotations

from typing import Literal

from clinishare_notify.domain.recipients import RecipientKind

EmailStatus = Literal["pending", "sending", "sent", "failed", "skipped"]


def skip_reason(*, smtp_enabled: bool, wants_email: bool, address: str | None,
                kind: RecipientKind) -> str | None:
    """Why no e-mail goes out, or None when it should. Patients have no address here: theirs is PHI and
    never travels on the bus, so they are told in the portal inbox only."""
    if not smtp_enabled:
        return "email_disabled"
    if not wants_email:
        return "preference_off"
    if kind == "patient" or not address:
        return "no_address"
    return None


def backoff_seconds(attempts: int, *, base: float, cap: float) -> float:
    """Exponential back-off after the ``attempts``-th failed send: base, 2*base, 4*base ... up to cap."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


def after_failure(attempts: int, *, max_attempts: int | None = None, age_seconds: float = 0.0,
                  retry_seconds: float | None = None) -> Literal["pending", "failed"]:
    """Retry until the retry window (from the notification's creation) has passed, or ``max_attempts``
    sends have failed when a cap is set; then give up (recorded, never retried again)."""
    if max_attempts is not None and attempts >= max_attempts:
        return "failed"
    if retry_seconds is not None and age_seconds >= retry_seconds:
        return "failed"
    return "pending"


def message_id(notification_id: str) -> str:
    """One Message-ID per notification, the same on every attempt: a send that timed out after DATA may
    have been delivered, and the retry carries the same id, so the receiver can drop the second copy."""
    return f"<{notification_id.replace(':', '.')}@notify.clinishare>"
