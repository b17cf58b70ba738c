"""A redelivered event never creates a second notification or e-mail: real RabbitMQ, real SMTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from clinishare_shared.consumer import IdempotentConsumer
from clinishare_shared.events import ChartShareGranted, DocumentShared, make_event
from clinishare_shared.testing import wait_for


async def test_same_event_three_times_one_notification_one_email(
        start_notify: Any, smtp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    deliveries: Counter[str] = Counter()
    original = IdempotentConsumer.__call__

    async def counting(self: IdempotentConsumer, event: Any) -> None:
        await original(self, event)
        deliveries[event.id] += 1

    monkeypatch.setattr(IdempotentConsumer, "__call__", counting)
    svc = await start_notify(rabbit=True, smtp_host="127.0.0.1", smtp_port=smtp.port)
    await svc.account("alice", name="Dr. Alice", email="alice@clinic.test")
    await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")
    await svc.office("o1", "carol", {"carol": "practitioner", "bob": "practitioner"})

    # one after the other: bob is named and a member of o1 (told once); carol through o1
    sequential = make_event(ChartShareGranted(grant_id="g1", owner_id="alice", rule="all", practitioner_ids=["bob"],
                                              office_ids=["o1"]), source="charts", subject="g1")
    for _ in range(3):
        await svc.bus.publish(sequential)
    # all at once, the same envelope
    concurrent = make_event(DocumentShared(document_id="d1", owner_id="alice", practitioner_ids=["bob"]),
                            source="documents", subject="d1")
    await asyncio.gather(*(svc.bus.publish(concurrent) for _ in range(3)))

    await wait_for(lambda: deliveries[sequential.id] == 3 and deliveries[concurrent.id] == 3,
                   message="all six deliveries handled")
    notes = await svc.notifications()
    assert sorted(n["_id"] for n in notes) == sorted(
        [f"{sequential.id}:bob", f"{sequential.id}:carol", f"{concurrent.id}:bob"])
    # bob has an address: both his e-mails go out; carol has none known: skipped, inbox only
    await wait_for(lambda: len(smtp.messages) == 2, message="two e-mails")

    # the SMTP server has a message before the worker records it as sent: wait for the record too
    async def bobs_sent() -> bool:
        states = {n["_id"]: n["email"]["status"] for n in await svc.notifications()}
        return all(states.get(f"{e.id}:bob") == "sent" for e in (sequential, concurrent))

    await wait_for(bobs_sent, message="both of bob's e-mails recorded as sent")
    assert await svc.worker.run_once() == 0
    assert len(smtp.messages) == 2 and smtp.attempts == 2
    assert Counter(tuple(m.rcpt_tos) for m in smtp.messages) == {("bob@clinic.test",): 2}
    states = {n["_id"]: n["email"] for n in await svc.notifications()}
    assert states[f"{sequential.id}:carol"]["status"] == "skipped"
    assert states[f"{sequential.id}:carol"]["reason"] == "no_address"
    assert {states[f"{e.id}:bob"]["status"] for e in (sequential, concurrent)} == {"sent"}


async def test_racing_replicas_insert_one_notification(start_notify: Any, smtp: Any) -> None:
    """Two replicas can both run the handler for one event before either records it as processed (the
    shared consumer only serializes within a process): the notification's deterministic id still makes
    it one notification and one e-mail."""
    svc = await start_notify(rabbit=True, smtp_host="127.0.0.1", smtp_port=smtp.port)
    await svc.account("bob", name="Dr. Bob", email="bob@clinic.test")
    event = make_event(ChartShareGranted(grant_id="g1", owner_id="alice", rule="all", practitioner_ids=["bob"],
                                         office_ids=[]), source="charts", subject="g1")
    handler = svc.app.state.infra.consumer.handlers[event.type]
    await asyncio.gather(*(handler(event) for _ in range(3)))
    await wait_for(lambda: len(smtp.messages) == 1, message="one e-mail")
    assert await svc.worker.run_once() == 0
    assert [n["_id"] for n in await svc.notifications()] == [f"{event.id}:bob"]
    assert len(smtp.messages) == 1
