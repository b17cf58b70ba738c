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


def _stdlib(mailer: SmtpMailer, to: str, message: Email, message_id: str) -> bytes:
    import io
    from email.generator import BytesGenerator

    out = io.BytesIO()
    BytesGenerator(out).flatten(mailer._build(to, message, message_id), linesep="\r\n")
    return out.getvalue()


def test_a_plain_message_is_written_without_the_email_package_and_byte_for_byte_as_it_would_write_it() -> None:
    """Plain ASCII messages skip the email package's header registry (about 0.6 ms a message on notify's
    event loop) and come out exactly as it writes them; anything it would fold, encode or rewrite is still
    its to write."""
    from clinishare_notify.mailer import _plain_render

    typical = Email(subject="Dr Bob shared a chart with you",
                    body="Dr Bob (practitioner) shared a chart with you on Clinishare.\n\nOpen it: https://x/c/1\n")
    cases = [
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test", typical, True),
        ("no-reply@clinic.test", "carol+inbox@clinic.test", typical, True),
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test",
         Email(subject="Dr. O'Neil shared a form: intake (v2)", body="From here on.\n.\n\nend"), True),
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test", Email(subject="s", body="x" * 78 + "\n"), True),
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test", Email(subject="s", body="x" * 79 + "\n"), False),
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test", Email(subject="word " * 16, body="b\n"), False),
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test", Email(subject="Dr Müller shared", body="b\n"), False),
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test", Email(subject="s", body="Dr Müller\n"), False),
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test", Email(subject="a  b", body="b\n"), False),
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test", Email(subject="=?utf-8?q?x?=", body="b\n"), False),
        ("Clinishare <no-reply@clinic.test>", "carol@clinic.test", Email(subject="s", body="tab\there\n"), False),
        ('"Clinishare, Inc." <no-reply@clinic.test>', "carol@clinic.test", typical, False),
        ("Clinishare <no-reply@clinic.test>", "Carol <carol@clinic.test>", typical, False),
    ]
    # a notice's Message-ID (delivery.message_id) can be longer than a line: it is written as it is
    long_id = "<6a0b1c2d3e4f5a6b7c8d9e0f.chart-grant.6a0b1c2d3e4f5a6b7c8d9e10.x@notify.clinishare>"
    for sender, to, message, plain in cases:
        mailer = SmtpMailer(NotifySettings(smtp_host="smtp.invalid", smtp_from=sender))
        for mid in ("<n1.2@clinishare>", long_id):
            assert (_plain_render(sender, to, message, mid) is not None) == plain, (sender, to, message, mid)
            assert mailer._render(to, message, mid) == _stdlib(mailer, to, message, mid), (sender, to, message, mid)
    for mid in ("<a b@clinishare>", "no-brackets@clinishare", "<x@y>" + "z"):
        assert _plain_render("a@b.c", "d@e.f", typical, mid) is None
        assert SmtpMailer(NotifySettings(smtp_host="smtp.invalid", smtp_from="a@b.c"))._render("d@e.f", typical, mid) \
            == _stdlib(SmtpMailer(NotifySettings(smtp_host="smtp.invalid", smtp_from="a@b.c")), "d@e.f", typical, mid)
    # without a Message-ID given, one is made, in either way of writing
    data = SmtpMailer(NotifySettings(smtp_host="smtp.invalid"))._render("carol@clinic.test", typical, None)
    assert message_from_bytes(data, policy=policy.default)["Message-ID"].endswith("@clinishare>")


def test_the_notice_e_mails_are_plain_enough_to_be_written_without_the_email_package() -> None:
    """Their lines fit 78 characters: the body goes as it is (7bit) and skips the email package."""
    from clinishare_notify.domain.messages import email
    from clinishare_notify.mailer import _plain_render

    notice = email("Dr Bob Jones shared a chart with you", "a chart", "/app/charts/shared-with-me",
                   base_url="https://clinishare.example.org")
    assert all(len(line) <= 78 for line in notice.body.splitlines())
    assert _plain_render("Clinishare <no-reply@clinishare.example.org>", "carol@clinic.test", notice,
                         "<n1@clinishare>") is not None
