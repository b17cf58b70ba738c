"""E-mail over a real SMTP server on loopback: what it says (no PHI), retries with back-off, giving up,
and the recipient's preference. Events arrive through the real RabbitMQ."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from clinishare_notify.domain.messages import Email
from clinishare_notify.mailer import SendFailed, SmtpMailer
from clinishare_notify.settings import NotifySettings
from clinishare_shared.events import ChartShareGranted, DocumentShared, FormSubmitted, OfficeRecipient
from clinishare_shared.testing import bearer, wait_for


def parse(envelope: Any) -> EmailMessage:
    return message_from_bytes(envelope.original_content, policy=policy.default)  # type: ignore[return-value]


async def test_email_names_sharer_kind_and_link_and_nothing_else(start_notify: Any, smtp: Any) -> None:
    # a long poll: the e-mails go out because an insert wakes the worker
    svc = await start_notify(rabbit=True, smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60,
                             smtp_from="Clinishare <notify@clinishare.test>")
    await svc.account("alice", name="Dr. Alice Smith", email="alice@clinic.test")
    await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")
    await svc.account("sam", "staff", name="Sam Desk", email="sam@clinic.test")
    await svc.account("pat-1", "patient")
    await svc.office("o1", "alice", {"alice": "practitioner", "sam": "staff"})
    shared = await svc.publish(DocumentShared(
        document_id="doc-1", owner_id="alice", workspace_patient_id="pat-1", patient_ids=["pat-1"],
        practitioner_ids=["bob"], offices=[OfficeRecipient(office_id="o1", audience="staff")]))

    await wait_for(lambda: len(smtp.messages) == 2, message="two e-mails")
    by_rcpt = {tuple(m.rcpt_tos): parse(m) for m in smtp.messages}
    assert set(by_rcpt) == {("bob@clinic.test",), ("sam@clinic.test",)}
    mail = by_rcpt[("bob@clinic.test",)]
    assert mail["Subject"] == "Clinishare: Dr. Alice Smith shared a document with you"
    assert mail["From"] == "Clinishare <notify@clinishare.test>" and mail["To"] == "bob@clinic.test"
    body = mail.get_content()
    assert "Dr. Alice Smith" in body and "a document" in body
    assert "https://clinishare.test/v1/documents/doc-1" in body
    assert "pat-1" not in body + mail["Subject"]
    # the patient is told in the portal inbox only: their address is PHI and never reaches notify
    pat = await svc.store.get(f"{shared.id}:pat-1", "pat-1")
    assert pat["email"]["status"] == "skipped" and pat["link"] == "/v1/portal/documents"

    # a form submission: the patient who submitted is never named, not even by id
    await svc.publish(FormSubmitted(submission_id="sub-1", assignment_id="as-1", form_id="form-1",
                                    form_version=1, author_id="alice", practitioner_id="bob", patient_id="pat-1",
                                    author_may_see=False))
    await wait_for(lambda: len(smtp.messages) == 3, message="the submission e-mail")
    sub = parse(smtp.messages[-1])
    assert sub["To"] == "bob@clinic.test" and "a form submission" in sub.get_content()
    assert "pat-1" not in sub.get_content() + sub["Subject"] and "sub-1" not in sub.get_content()


async def test_failing_smtp_retries_with_backoff_then_gives_up(start_notify: Any, smtp: Any) -> None:
    smtp.fail_with = "451 4.3.0 try again later"
    # a long poll: retries happen because the worker sleeps only until the next one is due
    svc = await start_notify(rabbit=True, smtp_host="127.0.0.1", smtp_port=smtp.port, email_max_attempts=3,
                             email_backoff_base_seconds=0.05, email_poll_seconds=60)
    await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")
    event = await svc.publish(ChartShareGranted(grant_id="g", owner_id="alice", rule="all",
                                                practitioner_ids=["bob"], office_ids=[]))
    nid = f"{event.id}:bob"

    async def failed() -> dict[str, Any] | None:
        doc = await svc.store.get(nid, "bob")
        return doc if doc["email"]["status"] == "failed" else None

    doc = await wait_for(failed, message="e-mail marked failed")
    assert smtp.attempts == 3 and smtp.messages == []
    assert doc["email"]["attempts"] == 3 and doc["email"]["last_error"] == "SMTPDataError 451"
    assert "next_attempt_at" not in doc["email"]
    # given up for good: a later pass sends nothing; the inbox entry stays
    assert await svc.worker.run_once() == 0 and smtp.attempts == 3
    assert doc["read"] is False and doc["title"] == "A practitioner shared all of their charts with you"


async def test_failed_send_waits_for_its_backoff(start_notify: Any, smtp: Any) -> None:
    smtp.fail_with = "554 5.0.0 rejected"
    svc = await start_notify(rabbit=True, smtp_host="127.0.0.1", smtp_port=smtp.port,
                             email_backoff_base_seconds=60)
    await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")
    before = datetime.now(UTC)
    event = await svc.publish(ChartShareGranted(grant_id="g", owner_id="alice", rule="all",
                                                practitioner_ids=["bob"], office_ids=[]))
    await wait_for(lambda: smtp.attempts == 1, message="first attempt")

    async def rescheduled() -> dict[str, Any] | None:
        doc = await svc.store.get(f"{event.id}:bob", "bob")
        return doc if doc["email"]["status"] == "pending" else None

    doc = await wait_for(rescheduled, message="retry scheduled")
    assert doc["email"]["attempts"] == 1 and doc["email"]["last_error"] == "SMTPDataError 554"
    assert (doc["email"]["next_attempt_at"] - before).total_seconds() >= 59
    assert await svc.worker.run_once() == 0 and smtp.attempts == 1  # not due yet


@pytest.mark.system  # a real connection attempt on loopback
async def test_nothing_listening_is_a_send_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        mailer = SmtpMailer(NotifySettings(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_seconds=2))
        with pytest.raises(SendFailed) as err:
            await mailer.send("bob@clinic.test", Email(subject="s", body="b"))
    assert err.value.reason == "ConnectionRefusedError"


@pytest.mark.system  # a real SMTP server on loopback
async def test_one_smtp_session_carries_many_e_mails_and_a_failed_or_dropped_one_is_replaced(
        smtp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of notices goes over kept sessions (one connection, greeting and EHLO for many e-mails),
    each still its own transaction with its own Message-ID; a session the server refused a message on is
    not reused, one the server dropped while kept is replaced at once and the e-mail still goes, and one
    idle too long is not reused."""
    from aiosmtpd.controller import Controller

    from clinishare_notify import mailer as mailer_module

    mailer = SmtpMailer(NotifySettings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_timeout_seconds=5))
    for i in range(5):
        await mailer.send(f"bob{i}@clinic.test", Email(subject="s", body="b"), message_id=f"<m{i}@clinishare>")
    assert len(smtp.messages) == 5 and len(set(smtp.sessions)) == 1 and mailer.sessions_opened == 1
    assert [parse(m)["Message-ID"] for m in smtp.messages] == [f"<m{i}@clinishare>" for i in range(5)]
    assert [m.rcpt_tos for m in smtp.messages] == [[f"bob{i}@clinic.test"] for i in range(5)]

    smtp.fail_with = "554 no"
    with pytest.raises(SendFailed):
        await mailer.send("carol@clinic.test", Email(subject="s", body="b"))
    smtp.fail_with = None
    await mailer.send("dave@clinic.test", Email(subject="s", body="b"))
    assert mailer.sessions_opened == 2 and smtp.sessions[-1] != smtp.sessions[0]  # not the failed session

    # the server goes away and comes back: the kept session is dead, the next e-mail still goes
    smtp.controller.stop()
    smtp.controller = Controller(smtp, hostname="127.0.0.1", port=smtp.port)
    smtp.controller.start()
    await mailer.send("erin@clinic.test", Email(subject="s", body="b"))
    assert smtp.messages[-1].rcpt_tos == ["erin@clinic.test"] and mailer.sessions_opened == 3
    monkeypatch.setattr(mailer_module, "IDLE_SECONDS", 0.0)  # every kept session is too old now
    await mailer.send("frank@clinic.test", Email(subject="s", body="b"))
    assert mailer.sessions_opened == 4
    await asyncio.to_thread(mailer.close)


@pytest.mark.system  # a real SMTP server on loopback
async def test_an_address_that_is_not_ascii_goes_through_send_message_with_smtputf8(smtp: Any) -> None:
    """Rendered bytes are for ASCII addresses; any other goes through smtplib's ``send_message``, which
    asks for SMTPUTF8 (this server offers it), on the same kept session as the rest."""
    mailer = SmtpMailer(NotifySettings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_timeout_seconds=5))
    await mailer.send("zoë@clinic.test", Email(subject="s", body="b"), message_id="<z1@clinishare>")
    await mailer.send("zoe@clinic.test", Email(subject="s", body="b"), message_id="<z2@clinishare>")
    assert [m.rcpt_tos for m in smtp.messages] == [["zoë@clinic.test"], ["zoe@clinic.test"]]
    assert "SMTPUTF8" in smtp.messages[0].mail_options and "SMTPUTF8" not in smtp.messages[1].mail_options
    assert [parse(m)["Message-ID"] for m in smtp.messages] == ["<z1@clinishare>", "<z2@clinishare>"]
    assert mailer.sessions_opened == 1
    await asyncio.to_thread(mailer.close)


async def test_preference_off_means_no_email(start_notify: Any, smtp: Any, signer: Any) -> None:
    svc = await start_notify(rabbit=True, smtp_host="127.0.0.1", smtp_port=smtp.port)
    await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")
    await svc.account("carol", name="Dr. Carol", email="carol@clinic.test")
    async with svc.client() as http:
        r = await http.put("/v1/notification-preferences", json={"email": False}, headers=bearer(signer, "bob"))
        assert r.status_code == 200
    event = await svc.publish(ChartShareGranted(grant_id="g", owner_id="alice", rule="all",
                                                practitioner_ids=["bob", "carol"], office_ids=[]))
    await wait_for(lambda: len(smtp.messages) == 1, message="carol's e-mail")
    assert smtp.messages[0].rcpt_tos == ["carol@clinic.test"]

    async def bobs_decided() -> bool:
        return (await svc.store.get(f"{event.id}:bob", "bob"))["email"]["status"] not in ("pending", "sending")

    await wait_for(bobs_decided, message="bob's e-mail decided")
    bob = await svc.store.get(f"{event.id}:bob", "bob")
    assert bob["email"] == {"status": "skipped", "reason": "preference_off", "attempts": 0}
    assert await svc.worker.run_once() == 0 and len(smtp.messages) == 1


async def test_two_workers_claim_batches_and_send_each_e_mail_once(start_notify: Any, smtp: Any) -> None:
    """Replicas over one database: e-mails are claimed a batch per read of the due ones (fewer scans on
    FerretDB), and each still goes out once, with its one Message-ID."""
    from clinishare_notify.delivery import BATCH, EmailWorker

    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()  # two workers of our own, started together
    recipients = [f"p{i}" for i in range(BATCH * 2 + 5)]
    for r in recipients:
        await svc.account(r, name=f"Dr {r}", email=f"{r}@clinic.test")
    await svc.publish(ChartShareGranted(grant_id="g", owner_id="alice", rule="all", practitioner_ids=recipients,
                                        office_ids=[]))
    settings = svc.app.state.email_worker.settings
    workers = [EmailWorker(store=svc.store, projection=svc.app.state.projection, mailer=SmtpMailer(settings),
                           settings=settings) for _ in range(2)]
    import asyncio

    sent = await asyncio.gather(*(w.run_once() for w in workers))
    assert sum(sent) == len(recipients)
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == sorted(f"{r}@clinic.test" for r in recipients)
    ids = [parse(m)["Message-ID"] for m in smtp.messages]
    assert len(set(ids)) == len(ids) == len(recipients)
    assert await workers[0].run_once() == 0  # nothing left, nothing sent twice
    assert len(await svc.store.notifications.distinct("_id", {"email.status": "sent"})) == len(recipients)


async def test_an_e_mail_whose_claim_ran_out_before_its_turn_is_not_sent_then_but_claimed_again(
        start_notify: Any, smtp: Any) -> None:
    """A slow database can let a claim lapse before its send: another worker may hold it by then, so it
    is not sent on the lapsed claim (that could send it twice), and it is sent once on the next claim."""
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    await svc.account("bob", name="Dr Bob", email="bob@clinic.test")
    await svc.publish(ChartShareGranted(grant_id="g", owner_id="alice", rule="all", practitioner_ids=["bob"],
                                        office_ids=[]))
    [doc] = await svc.store.claim_emails(lease_seconds=0.001, limit=5)
    assert doc["email"]["attempts"] == 1
    # its turn comes after the lease: a fast engine claims and delivers within the millisecond
    await wait_for(lambda: datetime.now(UTC) > doc["email"]["lease_until"], message="the lease to run out")
    assert await svc.worker._deliver(doc, [], await svc.worker.people([doc])) == 0 and smtp.messages == []
    assert await svc.worker.run_once() == 1  # claimed again (attempt 2) and sent once
    assert len(smtp.messages) == 1
    assert (await svc.store.claim_emails(lease_seconds=60, limit=5)) == []


async def test_e_mails_wait_for_the_events_in_processing_but_never_for_long(
        start_notify: Any, smtp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notices first: while notify processes an event, the e-mail worker's steps wait (an e-mail goes out
    seconds later either way, a notice is what someone waits for); each wait is bounded, so a stream of
    events that never pauses slows e-mails down but does not stop them."""
    from clinishare_notify import delivery

    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    await svc.account("bob", name="Dr Bob", email="bob@clinic.test")
    await svc.publish(ChartShareGranted(grant_id="g1", owner_id="alice", rule="all", practitioner_ids=["bob"],
                                        office_ids=[]))
    foreground = svc.app.state.infra.foreground
    assert foreground is svc.app.state.infra.consumer.foreground and foreground.running == 0
    monkeypatch.setattr(delivery, "FOREGROUND_WAIT_SECONDS", 30.0)
    with foreground.work():  # an event in processing
        sending = asyncio.create_task(svc.worker.run_once())
        await wait_for(lambda: foreground.waiting == 1, message="the worker waiting its turn")
        assert smtp.messages == [] and not sending.done()
    assert await asyncio.wait_for(sending, 10) == 1  # its turn came when the event was done
    assert len(smtp.messages) == 1
    # an event that never ends: each step waits its bound, then goes on
    await svc.publish(ChartShareGranted(grant_id="g2", owner_id="alice", rule="all", practitioner_ids=["bob"],
                                        office_ids=[]))
    monkeypatch.setattr(delivery, "FOREGROUND_WAIT_SECONDS", 0.05)
    with foreground.work():
        assert await asyncio.wait_for(svc.worker.run_once(), 10) == 1
    assert len(smtp.messages) == 2
