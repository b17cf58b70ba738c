"""A notice's e-mail taken by the worker straight from the consumer (``service.EmailIntake``): the notice is
written with its first attempt already claimed for the worker beside the consumer, which sends it from
memory, with no read of the due queue, of the notice or of its recipient, and no claim document. What the
consumer hands over is what it wrote; if the worker never sends it, the claim runs out and the due queue
has it, as any other e-mail."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from clinishare_notify import delivery
from clinishare_notify.store import now
from clinishare_shared.events import ChartShareGranted
from clinishare_shared.testing import wait_for


class Intake:
    """An ``EmailIntake`` that records what it is handed and sends nothing."""

    def __init__(self, until: datetime | None) -> None:
        self.until = until
        self.took: list[tuple[dict[str, Any], str]] = []

    def lease(self) -> datetime | None:
        return self.until

    def take(self, notification: Any, address: str) -> None:
        self.took.append((notification, address))


def _grant(*to: str) -> ChartShareGranted:
    return ChartShareGranted(grant_id="g", owner_id="alice", rule="all", practitioner_ids=list(to), office_ids=[])


async def test_a_notice_is_written_claimed_for_the_worker_and_handed_over_once(start_notify: Any, smtp: Any,
                                                                               monkeypatch: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    await svc.account("bob", name="Dr Bob", email="bob@clinic.test")
    await svc.account("carol", name="Dr Carol", email="carol@clinic.test")
    await svc.store.set_email_preference("carol", False)
    until = now() + timedelta(seconds=90)
    intake = Intake(until)
    monkeypatch.setattr(svc.worker, "lease", intake.lease)
    monkeypatch.setattr(svc.worker, "take", intake.take)
    event = await svc.publish(_grant("bob", "carol"))
    bob = f"{event.id}:bob"
    # handed over: bob's only (carol wants no e-mail), with the address the consumer read
    assert [(doc["_id"], address) for doc, address in intake.took] == [(bob, "bob@clinic.test")]
    stored = await svc.store.get(bob, "bob")
    assert stored["email"] == {"status": "sending", "attempts": 1, "lease_until": until}
    assert intake.took[0][0]["email"] == stored["email"]
    # queued for when the claim runs out, not before: no other worker looks at it meanwhile
    assert (await svc.store.email_due.find_one({"_id": bob}))["due_at"] == until
    assert await svc.store.claim_emails(lease_seconds=60, limit=5) == []
    carol = await svc.store.get(f"{event.id}:carol", "carol")
    assert carol["email"]["status"] == "skipped" and carol["email"]["reason"] == "preference_off"
    # a redelivery writes nothing, so it hands nothing over
    await svc.bus.publish(event)
    await svc.bus.drain()
    assert len(intake.took) == 1


async def test_the_worker_sends_what_it_took_without_reading_the_notice_its_recipient_or_the_queue(
        start_notify: Any, smtp: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.account("bob", name="Dr Bob", email="bob@clinic.test")
    worker = svc.worker
    reads: list[str] = []
    real_people, real_claim = worker.people, svc.store.claim_emails

    async def people(batch: Any) -> Any:
        reads.append("people")
        return await real_people(batch)

    async def claim_emails(**kwargs: Any) -> Any:
        found = await real_claim(**kwargs)
        reads.extend("claimed" for _ in found)
        return found

    worker.people, svc.store.claim_emails = people, claim_emails
    event = await svc.publish(_grant("bob"))
    nid = f"{event.id}:bob"

    async def sent() -> bool:
        return (await svc.store.get(nid, "bob"))["email"]["status"] == "sent"

    await wait_for(sent, message="the e-mail the consumer handed over goes out")
    assert len(smtp.messages) == 1 and smtp.messages[0].rcpt_tos == ["bob@clinic.test"]
    assert reads == []  # neither claimed from the queue nor its recipient read again
    assert await svc.store.email_claims.count_documents({}) == 0
    assert await svc.store.email_due.count_documents({}) == 0  # settled: off the queue
    assert (await svc.store.get(nid, "bob"))["email"]["attempts"] == 1
    assert await worker.run_once() == 0 and len(smtp.messages) == 1


async def test_an_e_mail_whose_worker_never_sent_it_goes_out_from_the_queue_once_its_claim_runs_out(
        start_notify: Any, smtp: Any, monkeypatch: Any) -> None:
    """The process died after writing the notice: nobody holds the e-mail in memory any more."""
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    await svc.account("bob", name="Dr Bob", email="bob@clinic.test")
    intake = Intake(now() + timedelta(milliseconds=300))  # a short claim, never acted on
    monkeypatch.setattr(svc.worker, "lease", intake.lease)
    monkeypatch.setattr(svc.worker, "take", intake.take)
    event = await svc.publish(_grant("bob"))
    nid = f"{event.id}:bob"
    assert await svc.store.claim_emails(lease_seconds=60, limit=5) == []  # claimed: not due

    async def sent_once() -> bool:
        return await svc.worker.run_once() == 1

    await wait_for(sent_once, timeout=10, message="due once the claim ran out")
    assert len(smtp.messages) == 1
    doc = await svc.store.get(nid, "bob")
    assert doc["email"]["status"] == "sent" and doc["email"]["attempts"] == 2  # the second attempt
    assert await svc.store.email_claims.find_one({"_id": f"{nid}#2"}) is not None


async def test_a_worker_that_is_stopped_or_full_claims_nothing(start_notify: Any, smtp: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    worker = svc.worker
    lease = worker.lease()
    assert lease is not None and now() + timedelta(seconds=worker.settings.email_lease_seconds - 5) < lease
    worker._fresh = [({}, "x@clinic.test")] * delivery.FRESH_KEPT
    assert worker.lease() is None  # holding its bound: new e-mails wait on the queue
    worker._fresh = []
    await worker.stop()
    assert worker.lease() is None
    await svc.account("bob", name="Dr Bob", email="bob@clinic.test")
    event = await svc.publish(_grant("bob"))
    doc = await svc.store.get(f"{event.id}:bob", "bob")
    assert doc["email"]["status"] == "pending" and doc["email"]["attempts"] == 0
    # no SMTP: nothing is claimed either
    off = await start_notify()
    assert off.worker.lease() is None


async def test_a_revoke_gives_up_the_e_mails_the_worker_took_and_has_not_begun_to_send(start_notify: Any,
                                                                                     smtp: Any) -> None:
    """A share revoked before its e-mail left: the e-mail is cancelled as a pending one would be; the
    e-mail of another grant stays with the worker."""
    from clinishare_shared.events import ChartShareRevoked

    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    worker = svc.worker
    await worker.stop()  # no pass runs: what it took stays taken until we run one
    worker.lease = lambda: now() + timedelta(seconds=90)
    for r in ("bob", "carol"):
        await svc.account(r, name=f"Dr {r}", email=f"{r}@clinic.test")
    revoked = ChartShareGranted(grant_id="g1", owner_id="alice", rule="all", practitioner_ids=["bob"], office_ids=[])
    kept = ChartShareGranted(grant_id="g2", owner_id="alice", rule="all", practitioner_ids=["carol"], office_ids=[])
    first = await svc.publish(revoked)
    second = await svc.publish(kept)
    assert [doc["_id"] for doc, _ in worker._fresh] == [f"{first.id}:bob", f"{second.id}:carol"]
    ended = await svc.publish(ChartShareRevoked(**revoked.model_dump()))
    # bob's e-mail about the share is given up; the notice that it ended is handed over as any other
    assert [doc["_id"] for doc, _ in worker._fresh] == [f"{second.id}:carol", f"{ended.id}:bob"]
    bob = await svc.store.get(f"{first.id}:bob", "bob")
    assert bob["withdrawn"] is True and bob["email"]["status"] == "skipped" and bob["email"]["reason"] == "withdrawn"
    assert "lease_until" not in bob["email"]
    assert await worker.run_once() == 2  # carol's share, and bob's notice that his share ended
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["bob@clinic.test", "carol@clinic.test"]
    assert (await svc.store.get(f"{ended.id}:bob", "bob"))["email"]["status"] == "sent"
    assert (await svc.store.get(f"{first.id}:bob", "bob"))["email"]["status"] == "skipped"
