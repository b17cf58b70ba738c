"""What a notification says, in the inbox and by e-mail. Principle 5: no PHI, ever.

A notice names only the actor when the actor is a practitioner (a practitioner's work name is not PHI),
the kind of item ("a chart", "a document", ...) and a link made of the API path and opaque ids. Never a
chart title, file name, form answer or a patient's name: the events do not carry them, and these
functions take nothing that could. The patient who submits a form is never named.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from clinishare_shared.events import (
    ChartNoteAdded, ChartShareExpired, ChartShareGranted, ChartShareRevoked, ConnectionCreated, DocumentShared,
    DocumentShareExpired, DocumentUnshared, EventData, FormAssigned, FormShared, FormSubmitted,
)

from clinishare_notify.domain.recipients import Recipient

UNKNOWN_ACTOR = "A practitioner"
_MAX_NAME = 80


@dataclass(frozen=True)
class Notice:
    title: str  # one sentence, shown in the inbox and as the e-mail subject
    item: str  # the kind of item, e.g. "a chart"
    link: str  # a path under the public base URL


@dataclass(frozen=True)
class Email:
    subject: str
    body: str


def display_name(name: str | None) -> str:
    """A practitioner's name made safe for one line of text and a mail header (no control characters,
    no line breaks: a name must not be able to inject headers), or a neutral fallback."""
    if not name:
        return UNKNOWN_ACTOR
    cleaned = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in name)
    cleaned = re.sub(r"\s+", " ", cleaned).strip()[:_MAX_NAME].strip()
    return cleaned or UNKNOWN_ACTOR


def actor_of(data: EventData) -> str | None:
    """The account whose action the event records (None when the actor is a patient: never named); for an
    expiry, the sharer whose share ended."""
    if isinstance(data, ChartShareGranted | DocumentShared | ChartShareRevoked | ChartShareExpired
                  | DocumentUnshared | DocumentShareExpired):
        return data.owner_id
    if isinstance(data, FormShared):
        return data.author_id
    if isinstance(data, FormAssigned):
        return data.practitioner_id
    if isinstance(data, ChartNoteAdded):
        return data.author_id
    if isinstance(data, ConnectionCreated):
        return data.owner_id
    return None


def notice(data: EventData, recipient: Recipient, actor_name: str | None) -> Notice:
    who = display_name(actor_name)
    if isinstance(data, ChartShareGranted):
        if data.rule == "chart" and data.chart_id:
            return Notice(f"{who} shared a chart with you", "a chart", f"/v1/charts/{data.chart_id}")
        item = "a patient's charts" if data.rule == "patient" else "all of their charts"
        return Notice(f"{who} shared {item} with you", item, "/v1/charts/shared-with-me")
    if isinstance(data, DocumentShared):
        link = "/v1/portal/documents" if recipient.kind == "patient" else f"/v1/documents/{data.document_id}"
        return Notice(f"{who} shared a document with you", "a document", link)
    if isinstance(data, ChartShareRevoked | ChartShareExpired | DocumentUnshared | DocumentShareExpired):
        return ended_notice(data, recipient, who)
    if isinstance(data, FormShared):
        return Notice(f"{who} shared a SmartForm with you", "a SmartForm", f"/v1/forms/{data.form_id}")
    if isinstance(data, FormAssigned):
        return Notice(f"{who} asked you to fill in a SmartForm", "a SmartForm to fill in", "/v1/portal/forms")
    if isinstance(data, FormSubmitted):
        return Notice("A patient submitted a SmartForm you can see", "a form submission",
                      f"/v1/forms/{data.form_id}/submissions")
    if isinstance(data, ChartNoteAdded):
        return Notice(f"{who} added a note to your chart", "a chart note", f"/v1/charts/{data.chart_id}")
    if isinstance(data, ConnectionCreated):
        target = "you" if data.target_kind == "practitioner" else "your office"
        return Notice(f"{who} connected to {target} with a Share PIN", "a connection", "/v1/connections")
    raise ValueError(f"no notice for {type(data).__name__}")


def ended_notice(data: ChartShareRevoked | ChartShareExpired | DocumentUnshared | DocumentShareExpired,
                 recipient: Recipient, who: str) -> Notice:
    """A share ended: the kind of item and the sharer's name, never what the item is."""
    chart = isinstance(data, ChartShareRevoked | ChartShareExpired)
    if chart:
        item = {"chart": "a chart", "patient": "a patient's charts", "all": "all of their charts"}[data.rule]  # type: ignore[union-attr]
    else:
        item = "a document"
    expired = isinstance(data, ChartShareExpired | DocumentShareExpired)
    if expired and recipient.account_id == data.owner_id:
        link = "/v1/chart-shares?include_revoked=true" if chart else f"/v1/documents/{data.document_id}"  # type: ignore[union-attr]
        mine = "your chart share" if chart else "your share of a document"
        return Notice(f"{mine[0].upper()}{mine[1:]} has expired", item, link)
    if chart:
        link = "/v1/charts/shared-with-me"
    else:
        link = "/v1/portal/documents" if recipient.kind == "patient" else "/v1/documents?scope=shared"
    if expired:
        return Notice(f"{who}'s share of {item} with you has expired", item, link)
    return Notice(f"{who} stopped sharing {item} with you", item, link)


def email(title: str, item: str, link: str, *, base_url: str) -> Email:
    """The e-mail for a stored notification: its title, the kind of item and the link, nothing else."""
    url = f"{base_url.rstrip('/')}{link}"
    body = (
        "Hello,\n\n"
        f"{title}.\n\n"
        f"What: {item}\n"
        f"Open it in Clinishare:\n{url}\n\n"
        # lines of at most 78 characters (RFC 5322's advice): the body then goes as it is (7bit), not
        # quoted-printable, and is written without the email package (mailer._plain_render)
        "You receive this because e-mail notifications are on for your Clinishare\n"
        "account; you can turn them off in your notification preferences.\n"
        "Clinishare never puts patient details in e-mails.\n"
    )
    return Email(subject=f"Clinishare: {title}", body=body)
