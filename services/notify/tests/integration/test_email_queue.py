"""The e-mail due queue (``email_due``): the worker finds due e-mails there, not by scanning every
notification. It is a superset of the e-mails in flight: its entry is written before the notification,
so a crash between the two leaves an entry the worker re-checks, never a pending e-mail it cannot find."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from clinishare_notify.store import QUEUE_GRACE, NotifyStore, now
from clinishare_shared import querystats
from clinishare_shared.events import ChartShareGranted
from clinishare_shared.testing import wait_for


async def _share(svc: Any, *recipients: str) -> list[str]:
    for r in recipients:
        await svc.account(r, name=f"Dr {r}", email=f"{r}@clinic.test")
    event = await svc.publish(ChartShareGranted(grant_id="g", owner_id="alice", rule="all",
                                                practitioner_ids=list(recipients), office_ids=[]))
    return [f"{event.id}:{r}" for r in recipients]


async def test_the_queue_holds_the_e_mails_in_flight_and_nothing_once_they_are_sent(start_notify: Any,
                                                                                    smtp: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    ids = await _share(svc, "bob", "carol")
    queued = await svc.store.email_due.find({}).to_list()
    assert sorted(e["_id"] for e in queued) == sorted(ids)
    assert all(e["due_at"] <= now() for e in queued)
    assert await svc.worker.run_once() == 2 and len(smtp.messages) == 2
    assert await svc.store.email_due.count_documents({}) == 0
    assert await svc.worker.run_once() == 0 and len(smtp.messages) == 2


async def test_an_entry_whose_notification_is_not_written_yet_is_looked_at_again_and_the_e_mail_goes_out(
        start_notify: Any, smtp: Any) -> None:
    """The handler writes the entry, then the notification: a worker passing in between keeps the entry."""
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    [nid] = await _share(svc, "bob")
    doc = await svc.store.notifications.find_one({"_id": nid})
    await svc.store.notifications.delete_one({"_id": nid})  # as if the notification's insert had not landed yet
    assert await svc.store.claim_emails(lease_seconds=60, limit=5) == []
    entry = await svc.store.email_due.find_one({"_id": nid})
    assert entry is not None and entry["due_at"] > now()  # kept, looked at again in a moment
    await svc.store.notifications.insert_one(doc)  # the handler's second write lands

    async def sent() -> bool:
        return await svc.worker.run_once() == 1

    await wait_for(sent, timeout=10, message="e-mail sent after the entry was looked at again")
    assert len(smtp.messages) == 1 and await svc.store.email_due.count_documents({}) == 0


async def test_an_entry_left_by_a_crashed_writer_is_dropped_after_the_grace_unless_a_writer_touched_it(
        start_notify: Any) -> None:
    svc = await start_notify()
    store: NotifyStore = svc.store
    await store.queue_emails(["gone:bob"], now())  # the handler died before inserting the notification
    await store.email_due.update_one({"_id": "gone:bob"}, {"$set": {"since": now() - QUEUE_GRACE - timedelta(seconds=1)}})
    old = await store.email_due.find_one({"_id": "gone:bob"})
    await store.queue_emails(["gone:bob"], now())  # meanwhile the redelivered event's handler writes it anew
    await store._settle_entry(old, None, now())
    assert await store.email_due.find_one({"_id": "gone:bob"}) is not None  # not dropped: it was touched
    await store.email_due.update_one({"_id": "gone:bob"}, {"$set": {"since": now() - QUEUE_GRACE - timedelta(seconds=1),
                                                                    "due_at": now()}})
    assert await store.claim_emails(lease_seconds=60, limit=5) == []
    assert await store.email_due.find_one({"_id": "gone:bob"}) is None


async def test_pending_e_mails_without_an_entry_are_queued_when_the_worker_starts(start_notify: Any,
                                                                                 smtp: Any) -> None:
    """Notifications written before the queue existed."""
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    [nid] = await _share(svc, "bob")
    await svc.store.email_due.delete_many({})
    assert await svc.worker.run_once() == 0  # not on the queue: not found
    assert await svc.store.queue_unqueued() == 1
    assert await svc.store.queue_unqueued() == 0
    svc.worker.start()

    async def sent() -> bool:  # the server has it before the worker records it
        return (await svc.store.get(nid, "bob"))["email"]["status"] == "sent"

    await wait_for(sent, message="the e-mail queued at start goes out")
    assert len(smtp.messages) == 1


async def test_withdrawn_and_skipped_e_mails_leave_the_queue(start_notify: Any, smtp: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    await _share(svc, "bob")
    await svc.store.withdraw_grant("g")
    assert await svc.worker.run_once() == 0 and smtp.messages == []
    assert await svc.store.email_due.count_documents({}) == 0


async def test_a_pass_finds_notifications_only_by_id_and_an_idle_pass_touches_none(
        start_notify: Any, smtp: Any, mongodb_url: str | None, db_name: str) -> None:
    if not mongodb_url:
        pytest.skip("counts a real client's commands: needs a server (FerretDB under make test, or MONGODB_URL)")
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    await _share(svc, "bob")
    stats = querystats.QueryStats()
    client: Any = AsyncMongoClient(mongodb_url, event_listeners=[stats], tz_aware=True)
    try:
        store = NotifyStore(client[db_name])
        [doc] = await store.claim_emails(lease_seconds=60, limit=5)
        await store.emails_sent([doc["_id"]])
        used = [k for k in stats.rows if k[1] == "notifications"]
        finds = [k for k in used if k[2] == "find"]
        assert finds and all(k[3] == '{"_id": "?"}' for k in finds), finds  # no scan for the due ones
        assert all(k[3].startswith('{"_id": "?"') for k in used), used  # the updates name their ids
        stats.rows.clear()
        assert await store.claim_emails(lease_seconds=60, limit=5) == []
        assert not [k for k in stats.rows if k[1] == "notifications"]
    finally:
        await client.close()


async def test_an_attempt_claimed_by_a_worker_that_died_before_marking_it_is_taken_over(start_notify: Any,
                                                                                       smtp: Any) -> None:
    """A worker killed between inserting its claim and marking the e-mail sending leaves the claim of an
    e-mail still pending: once that claim is a lease old another worker takes the attempt over, and the
    e-mail goes out once; a fresh claim of another worker is left alone."""
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    stale, fresh = await _share(svc, "bob", "carol")
    await svc.store.email_claims.insert_many([{"_id": f"{stale}#1", "at": now() - timedelta(seconds=120)},
                                              {"_id": f"{fresh}#1", "at": now()}])
    claimed = await svc.store.claim_emails(lease_seconds=60, limit=5)
    assert [d["_id"] for d in claimed] == [stale]
    assert claimed[0]["email"]["attempts"] == 1
    assert (await svc.store.notifications.find_one({"_id": fresh}))["email"]["status"] == "pending"


async def test_a_new_notification_s_e_mail_is_queued_by_an_insert_and_an_existing_entry_is_updated(
        start_notify: Any, smtp: Any) -> None:
    """The entry of a notification about to be written is new: one insert (no upsert, which FerretDB runs
    as a locked read and write). If it exists after all (a redelivery), it is updated as before: due
    again, with a new stamp."""
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    calls: list[str] = []
    due = svc.store.email_due
    for name in ("insert_one", "update_one"):
        real = getattr(due, name)

        async def recording(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return await _real(*args, **kwargs)

        setattr(due, name, recording)
    [nid] = await _share(svc, "bob")
    assert calls == ["insert_one"]
    before = await due.find_one({"_id": nid})
    later = now() + timedelta(minutes=5)
    calls.clear()
    await svc.store.queue_emails([nid], later, new=True)
    assert calls == ["insert_one", "update_one"]  # it existed: the insert failed, the update made it due again
    after = await due.find_one({"_id": nid})
    assert after["due_at"] == later and after["stamp"] != before["stamp"]
    assert await due.count_documents({}) == 1
