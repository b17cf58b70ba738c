import asyncio
from typing import Any

import pytest

from clinishare_shared.bus import InMemoryBus
from clinishare_shared.consumer import PROCESSED, IdempotentConsumer
from clinishare_shared.events import Envelope
from clinishare_shared.testing import wait_for


async def test_duplicate_delivery_processed_once(db: Any, make_envelope) -> None:
    calls: list[str] = []

    async def h(ev: Envelope) -> None:
        calls.append(ev.id)

    consumer = IdempotentConsumer(db, service="charts", handlers={"identity.connection.created": h})
    await consumer.ensure_indexes()
    ev = make_envelope()
    await consumer(ev)
    await consumer(ev)
    await consumer(Envelope.model_validate_json(ev.model_dump_json()))
    assert calls == [ev.id]
    rec = await db[PROCESSED].find_one({"_id": ev.id})
    assert rec["type"] == ev.type and rec["processed_at"] is not None
    assert consumer.routing_keys == ["identity.connection.created"]


async def test_concurrent_duplicates_processed_once(db: Any, make_envelope) -> None:
    calls: list[str] = []
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(ev: Envelope) -> None:
        calls.append(ev.id)
        entered.set()
        await release.wait()

    consumer = IdempotentConsumer(db, service="charts", handlers={"identity.connection.created": slow})
    ev, other = make_envelope(), make_envelope()
    tasks = [asyncio.create_task(consumer(e)) for e in (ev, ev, ev, other)]
    await entered.wait()
    # all three deliveries of ev are in (one in the handler, two waiting)
    await wait_for(lambda: consumer._locks._locks.get(ev.id, (None, 0))[1] == 3)
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(calls) == sorted([ev.id, other.id])
    assert len(consumer._locks) == 0  # no leak


async def test_failure_not_recorded_and_redelivery_reprocesses(db: Any, make_envelope) -> None:
    attempts: list[int] = []

    async def flaky(ev: Envelope) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("db hiccup")

    consumer = IdempotentConsumer(db, service="charts", handlers={"identity.connection.created": flaky})
    ev = make_envelope()
    with pytest.raises(RuntimeError):
        await consumer(ev)
    assert await db[PROCESSED].find_one({"_id": ev.id}) is None
    await consumer(ev)
    await consumer(ev)
    assert len(attempts) == 2
    assert await db[PROCESSED].count_documents({}) == 1


async def test_unhandled_type_is_recorded_and_ignored(db: Any, make_envelope) -> None:
    consumer = IdempotentConsumer(db, service="charts", handlers={})
    ev = make_envelope()
    await consumer(ev)
    assert await db[PROCESSED].count_documents({"_id": ev.id}) == 1


async def test_through_the_in_memory_bus_with_retries(db: Any, make_envelope) -> None:
    bus = InMemoryBus(delivery_limit=3)
    attempts: list[str] = []

    async def flaky(ev: Envelope) -> None:
        attempts.append(ev.id)
        if len(attempts) < 2:
            raise RuntimeError("once")

    consumer = IdempotentConsumer(db, service="charts", handlers={"identity.connection.created": flaky})
    await bus.subscribe("charts", consumer.routing_keys, consumer)
    ev = make_envelope()
    await bus.publish(ev)
    await bus.publish(ev)  # the relay re-published after a crash
    await bus.drain()
    assert attempts == [ev.id, ev.id] and not bus.dead_letters
    await bus.close()


class _Recording:
    """A database whose processed-events collection records every call made to it."""

    def __init__(self, db: Any, calls: list[tuple[str, Any]]) -> None:
        self._db, self._calls = db, calls

    def __getitem__(self, name: str) -> Any:
        coll = self._db[name]
        if name != PROCESSED:
            return coll
        calls = self._calls

        class Coll:
            def __getattr__(self, method: str) -> Any:
                fn = getattr(coll, method)

                async def call(*args: Any, **kwargs: Any) -> Any:
                    calls.append((method, args[0] if args else None))
                    return await fn(*args, **kwargs)

                return call

        return Coll()


async def test_the_processed_check_is_one_id_lookup_and_never_sweeps(db: Any, make_envelope) -> None:
    """What a delivery costs the consumer: one lookup by the event's id (the primary key, index-backed on
    every engine) and, the first time, one insert. Expired ids are removed by the TTL index or its purge
    (``mongo.purge_expired``), never on this path."""
    calls: list[tuple[str, Any]] = []
    handled: list[str] = []

    async def h(ev: Envelope) -> None:
        handled.append(ev.id)

    consumer = IdempotentConsumer(_Recording(db, calls), service="charts", handlers={"identity.connection.created": h})
    ev = make_envelope()
    await consumer(ev)
    assert [c[0] for c in calls] == ["find_one", "insert_one"] and calls[0][1] == {"_id": ev.id}
    calls.clear()
    await consumer(ev)  # a redelivery
    assert calls == [("find_one", {"_id": ev.id})] and handled == [ev.id]


async def test_an_event_in_processing_is_foreground_work(db: Any, make_envelope) -> None:
    """While the consumer processes an event, background work that asks ``quiet`` waits (at most its
    bound); once none is in processing it goes at once."""
    from clinishare_shared.foreground import Foreground

    foreground = Foreground()
    seen: list[int] = []
    release = asyncio.Event()

    async def h(ev: Envelope) -> None:
        seen.append(foreground.running)
        await release.wait()

    consumer = IdempotentConsumer(db, service="charts", handlers={"identity.connection.created": h},
                                  foreground=foreground)
    await consumer.ensure_indexes()
    assert await foreground.quiet(0.0) is True  # nothing in processing: no wait
    processing = asyncio.create_task(consumer(make_envelope()))
    await wait_for(lambda: seen == [1], message="the handler running")
    assert await foreground.quiet(0.01) is False  # the bound ran out while the event was in processing
    background = asyncio.create_task(foreground.quiet(30))
    await wait_for(lambda: foreground.waiting == 1, message="background waiting")
    assert not background.done()
    release.set()
    await processing
    assert await asyncio.wait_for(background, 5) is True and foreground.running == 0 and foreground.waiting == 0
