"""SMTP client: the stdlib smtplib, run in a worker thread so the event loop never blocks on the server."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

from clinishare_notify.domain.messages import Email
from clinishare_notify.settings import NotifySettings


class SendFailed(Exception):
    """The message was not accepted. ``reason`` is safe to record and log: an error class and SMTP code,
    never the server's text (it may echo addresses)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Mailer(Protocol):
    async def send(self, to: str, message: Email, *, message_id: str | None = None) -> None: ...


def _reason(exc: Exception) -> str:
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = {c for c, _ in exc.recipients.values()}
        code = min(codes) if codes else None
    return f"{type(exc).__name__}{f' {code}' if code else ''}"


class SmtpMailer:
    def __init__(self, settings: NotifySettings) -> None:
        assert settings.smtp_host, "SMTP is disabled"
        self.host = settings.smtp_host
        self.port = settings.smtp_port_or_default
        self.sender = settings.smtp_from
        self.starttls = settings.smtp_starttls
        self.username = settings.smtp_username
        self.password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        self.timeout = settings.smtp_timeout_seconds

    def _build(self, to: str, message: Email, message_id: str | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = message.subject
        msg["Message-ID"] = message_id or make_msgid(domain="clinishare")
        msg.set_content(message.body)
        return msg

    def _send_sync(self, to: str, message: Email, message_id: str | None) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username and self.password:
                smtp.login(self.username, self.password)
            smtp.send_message(self._build(to, message, message_id))

    async def send(self, to: str, message: Email, *, message_id: str | None = None) -> None:
        """Raises SendFailed when the server did not accept it. A timeout after DATA raises too, although
        the server may have taken the message: the caller retries with the same ``message_id``."""
        try:
            await asyncio.to_thread(self._send_sync, to, message, message_id)
        except (smtplib.SMTPException, OSError) as exc:
            raise SendFailed(_reason(exc)) from None
