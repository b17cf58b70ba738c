"""The e-mail is rendered on the event loop and the sending thread only talks to the server: what it
sends must be what smtplib's own ``send_message`` would have sent for the same message."""

from __future__ import annotations

import smtplib
from email import message_from_bytes, policy
from typing import Any

from clinishare_notify.domain.messages import Email
from clinishare_notify.mailer import SmtpMailer
from clinishare_notify.settings import NotifySettings


class _Capture(smtplib.SMTP):
    """smtplib's client, never connected: ``send_message`` runs as it does and hands its bytes here."""

    def __init__(self) -> None:
        super().__init__()  # no host: no connection
        self.sent: list[tuple[str, list[str], bytes]] = []

    def ehlo_or_helo_if_needed(self) -> None:
        return None

    def sendmail(self, from_addr: str, to_addrs: Any, msg: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.sent.append((from_addr, list(to_addrs), msg))
        return {}


def test_the_rendered_message_is_what_send_message_would_put_on_the_wire() -> None:
    mailer = SmtpMailer(NotifySettings(smtp_host="smtp.invalid", smtp_from="Clinishare <no-reply@clinic.test>"))
    message = Email(subject="Dr Bob shared a chart with you", body="Open it in Clinishare:\nhttps://x/charts/1\n")
    data = mailer._render("carol@clinic.test", message, "<n1@clinishare>")
    smtp = _Capture()
    smtp.send_message(mailer._build("carol@clinic.test", message, "<n1@clinishare>"))
    [(sender, to, wire)] = smtp.sent
    assert data == wire and to == ["carol@clinic.test"] and sender == mailer.envelope_from == "no-reply@clinic.test"
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed["Message-ID"] == "<n1@clinishare>" and parsed["Subject"] == message.subject
    assert parsed.get_content().replace("\r\n", "\n") == message.body
