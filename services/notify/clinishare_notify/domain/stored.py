"""The stored documents, one type per collection: what the store writes and hands out. Plain
``TypedDict``s: a document read from MongoDB is a dict already, so typing it costs nothing at run time."""

from __future__ import annotations

from datetime import datetime

from typing_extensions import NotRequired, TypedDict

from clinishare_notify.domain.delivery import EmailStatus
from clinishare_notify.domain.recipients import RecipientKind


class EmailState(TypedDict):
    """A notification's e-mail: ``pending`` (due at ``next_attempt_at``), ``sending`` (claimed until
    ``lease_until``), ``sent``, ``failed`` (given up) or ``skipped`` (``reason``)."""
    status: EmailStatus
    attempts: int
    reason: NotRequired[str | None]
    next_attempt_at: NotRequired[datetime]
    lease_until: NotRequired[datetime]
    sent_at: NotRequired[datetime]
    failed_at: NotRequired[datetime]
    last_error: NotRequired[str | None]


class NotificationDoc(TypedDict):
    """``notifications``: ``_id`` is ``<event id>:<recipient id>`` (a redelivery inserts nothing new);
    listings page by ``seq``, a time-ordered id."""
    _id: str
    seq: str
    event_id: str
    type: str
    recipient_id: str
    recipient_kind: RecipientKind
    title: str
    item: str
    link: str
    actor_id: str | None
    ref: dict[str, str]  # ids tying the notice to what it is about (``grant_id``, ``ended_grant_id``, ...)
    created_at: datetime
    read: bool
    read_at: datetime | None
    email: EmailState
    withdrawn: NotRequired[bool]


def notification_id(event_id: str, recipient_id: str) -> str:
    return f"{event_id}:{recipient_id}"
