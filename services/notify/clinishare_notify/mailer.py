"""SMTP client: the stdlib smtplib, run in a worker thread so the event loop never blocks on the server.
The message is rendered to bytes on the event loop, so the thread only talks to the server: its socket
calls release the GIL, where rendering in eight threads at once made them queue with the event loop for it.

Sessions are kept open between messages (an SMTP session carries any number of mail transactions), up to
``SESSIONS_KEPT`` of them, each used by one send at a time: a burst of notices costs one connection, one
greeting and one EHLO (and STARTTLS and AUTH) per session instead of per e-mail. A session idle for
``IDLE_SECONDS`` is closed rather than reused (servers drop idle clients), one that failed in any way is
closed, and one the server dropped while it was kept is replaced once, at once (the retry carries the
same Message-ID, as every retry does)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import smtplib
import ssl
import threading
import time
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
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


SESSIONS_KEPT = 8  # the e-mail worker sends this many at once (delivery.SENDING)
IDLE_SECONDS = 30.0


class SmtpMailer:
    def __init__(self, settings: NotifySettings) -> None:
        assert settings.smtp_host, "SMTP is disabled"
        self.host = settings.smtp_host
        self.port = settings.smtp_port_or_default
        self.sender = settings.smtp_from
        self.envelope_from = parseaddr(self.sender)[1] or self.sender  # MAIL FROM, as send_message takes it
        self.starttls = settings.smtp_starttls
        self.username = settings.smtp_username
        self.password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        self.timeout = settings.smtp_timeout_seconds
        self._kept: list[tuple[smtplib.SMTP, float]] = []  # idle sessions and when each was last used
        self._lock = threading.Lock()
        self.sessions_opened = 0

    def _build(self, to: str, message: Email, message_id: str | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = message.subject
        msg["Message-ID"] = message_id or make_msgid(domain="clinishare")
        msg.set_content(message.body)
        return msg

    def _open(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username and self.password:
                smtp.login(self.username, self.password)
        except BaseException:
            _close(smtp)
            raise
        self.sessions_opened += 1
        return smtp

    def _take(self) -> smtplib.SMTP | None:
        """A kept session, if one was used lately (older ones are closed)."""
        with self._lock:
            while self._kept:
                smtp, used = self._kept.pop()
                if time.monotonic() - used < IDLE_SECONDS:
                    return smtp
                _close(smtp, polite=True)
        return None

    def _keep(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._kept) < SESSIONS_KEPT:
                self._kept.append((smtp, time.monotonic()))
                return
        _close(smtp, polite=True)

    def _render(self, to: str, message: Email, message_id: str | None) -> bytes:
        """The message as it goes on the wire (what ``send_message`` would flatten: CRLF line ends)."""
        message_id = message_id or make_msgid(domain="clinishare")
        plain = _plain_render(self.sender, to, message, message_id)
        if plain is not None:
            return plain
        out = io.BytesIO()
        BytesGenerator(out).flatten(self._build(to, message, message_id), linesep="\r\n")
        return out.getvalue()

    def _send_sync(self, to: str, data: bytes | EmailMessage) -> None:
        """``data``: the rendered message, or (an address that is not ASCII) the message itself, which
        ``send_message`` sends with SMTPUTF8 where the server offers it."""
        def transaction(smtp: smtplib.SMTP) -> None:
            if isinstance(data, bytes):
                smtp.sendmail(self.envelope_from, [to], data)
            else:
                smtp.send_message(data)

        smtp = self._take()
        try:
            if smtp is not None:
                try:
                    transaction(smtp)
                except smtplib.SMTPServerDisconnected:  # dropped while kept: a new session, once
                    _close(smtp)
                    smtp = None
            if smtp is None:
                smtp = self._open()
                transaction(smtp)
        except BaseException:
            if smtp is not None:
                _close(smtp)
            raise
        self._keep(smtp)

    def close(self) -> None:
        """Say goodbye to the kept sessions (at shutdown)."""
        with self._lock:
            kept, self._kept = self._kept, []
        for smtp, _ in kept:
            _close(smtp, polite=True)

    async def send(self, to: str, message: Email, *, message_id: str | None = None) -> None:
        """Raises SendFailed when the server did not accept it. A timeout after DATA raises too, although
        the server may have taken the message: the caller retries with the same ``message_id``."""
        try:
            # rendered here, between awaits; the thread only talks to the server (the socket calls
            # release the GIL, so eight sends at once do not take turns with the event loop for it)
            data = self._render(to, message, message_id) if to.isascii() and self.envelope_from.isascii() \
                else self._build(to, message, message_id)
            await asyncio.to_thread(self._send_sync, to, data)
        except (smtplib.SMTPException, OSError) as exc:
            raise SendFailed(_reason(exc)) from None


# what the stdlib writes unchanged: a bare address, "Name <address>", and unstructured text, all printable
# ASCII (no RFC 2047 "=?" that its parser would decode and encode again)
_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")
_NAMED = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)* <[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+>")
_TEXT = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9._%+-]{1,400}@[A-Za-z0-9.-]{1,200}>")
_MAX_LINE = 78  # the default policy's max_line_length: longer lines are folded or encoded


def _plain_render(sender: str, to: str, message: Email, message_id: str) -> bytes | None:
    """The bytes ``_build`` + ``BytesGenerator`` give for a message they write as it is: printable ASCII
    headers that need no folding and a 7bit body of short ASCII lines; None for anything else, which the
    stdlib renders. The email package spends about 0.6 ms per message on its header registry, on the
    event loop; this, microseconds. (test_mailer_render compares the two byte for byte.)"""
    headers = (("From", sender, _NAMED.fullmatch(sender) or _ADDRESS.fullmatch(sender)),
               ("To", to, _ADDRESS.fullmatch(to)),
               ("Subject", message.subject, _TEXT.fullmatch(message.subject) and "=?" not in message.subject),
               ("Message-ID", message_id, _MESSAGE_ID.fullmatch(message_id)))
    # a Message-ID has nowhere to fold: the stdlib writes a long one as it is, on one line
    if not all(ok and (name == "Message-ID" or len(name) + 2 + len(value) <= _MAX_LINE) for name, value, ok in headers):
        return None
    body = message.body if message.body.endswith("\n") else message.body + "\n"
    lines = body[:-1].split("\n")
    if not body.isascii() or "\r" in body or any(len(line) > _MAX_LINE for line in lines) \
            or any(not line.isprintable() for line in lines):
        return None
    lines = [">" + line if line.startswith("From ") else line for line in lines]  # as the generator does
    head = "".join(f"{name}: {value}\r\n" for name, value, _ in headers)
    return (head + 'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n'
            "MIME-Version: 1.0\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode("ascii")


def _close(smtp: smtplib.SMTP, *, polite: bool = False) -> None:
    """Close the session, after a QUIT when ``polite`` (a healthy session we no longer need: not after a
    failure, when the server may not answer before the timeout); never raises."""
    if polite:
        with contextlib.suppress(Exception):
            smtp.quit()
    with contextlib.suppress(Exception):
        smtp.close()
