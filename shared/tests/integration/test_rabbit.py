"""The RabbitMQ bus against the REAL broker: outbox -> exchange -> quorum queue -> idempotent consumer,
duplicates, the delivery limit and the DLQ, outages, unroutable publishes, malformed messages."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest

from clinishare_shared.bus import PublishFailed
from clinishare_shared.bus.rabbit import QUEUE_HEADER, REASON_HEADER, RabbitBus
from clinishare_shared.consumer import IdempotentConsumer
from clinishare_shared.events import Envelope, OfficeCreated, OfficeMember, make_event
from clinishare_shared.outbox import OutboxRelay, push_events, with_events
from clinishare_shared.testing import wait_for

LIMIT = 2


@pytest.fixture
async def buses(amqp_url: str, unique: str, amqp_admin: dict[str, Any]) -> AsyncIterator[Callable[..., Any]]:
    """``await buses(url=None, **kw)``: a started RabbitBus on the test's own exchange; closed and its
    exchanges/queues deleted at teardown."""
    made: list[RabbitBus] = []
    exchange = f"test.{unique}"
    admin = amqp_admin
    admin["exchanges"] += [exchange, f"{exchange}.dlx"]

    async def make(url: str | None = None, **kw: Any) -> RabbitBus:
        kw.setdefault("delivery_limit", LIMIT)
        kw.setdefault("publish_timeout", 2.0)
        kw.setdefault("connect_timeout", 5.0)
        bus = RabbitBus(url or amqp_url, exchange=exchange, **kw)
        made.append(bus)
        await bus.start()
        return bus

    yield make
    for bus in made:
        await bus.close()


def _queue(unique: str, admin: dict[str, Any], name: str = "q") -> str:
    q = f"test.{unique}.{name}"
    admin["queues"] += [q, f"{q}.dlq"]
    return q


def _office_event(i: int = 0) -> Envelope:
    return make_event(OfficeCreated(office_id=f"o{i}", owner_id="p1", name="North", version=1,
                                    members=[OfficeMember(account_id="p1", role="practitioner")]),
                      source="identity", subject=f"o{i}", correlation_id=f"corr-{i}")


class Recorder:
    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def __call__(self, ev: Envelope) -> None:
        self.events.append(ev)


async def test_outbox_event_reaches_consumer_intact(buses, db, unique, amqp_admin) -> None:
    bus = await buses()
    queue = _queue(unique, amqp_admin)
    rec = Recorder()
    raw: list[aio_pika.abc.AbstractIncomingMessage] = []
    consumer = IdempotentConsumer(db, service="charts", handlers={"identity.office.created": rec})
    await bus.subscribe(queue, consumer.routing_keys, consumer)
    # a raw tap on a second queue to see the AMQP properties
    tap = await amqp_admin["channel"].declare_queue(f"test.{unique}.tap", exclusive=True)
    await tap.bind(f"test.{unique}", routing_key="identity.#")

    async def on_tap(m: aio_pika.abc.AbstractIncomingMessage) -> None:
        raw.append(m)
        await m.ack()

    await tap.consume(on_tap)

    ev = _office_event()
    await db.offices.insert_one(with_events({"_id": "o0", "name": "North"}, ev))
    relay = OutboxRelay(db, ["offices"], bus)
    assert await relay.run_once() == 1
    await wait_for(lambda: rec.events and raw, message="delivery")
    got = rec.events[0]
    assert got == ev and got.model_dump_json() == ev.model_dump_json()
    assert got.payload() == ev.payload()
    m = raw[0]
    assert m.message_id == ev.id and m.type == ev.type and m.correlation_id == "corr-0"
    assert m.app_id == "identity" and m.content_type == "application/json"
    assert m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert Envelope.model_validate_json(m.body) == ev
    assert await relay.pending() == 0 and (await db.offices.find_one({"_id": "o0"}))["_outbox"] == []


async def test_duplicates_processed_once(buses, db, unique, amqp_admin) -> None:
    bus = await buses()
    queue = _queue(unique, amqp_admin)
    calls: list[str] = []

    async def slow(ev: Envelope) -> None:
        calls.append(ev.id)
        await asyncio.sleep(0.2)  # a handler doing real work: widens the race between duplicates

    consumer = IdempotentConsumer(db, service="charts", handlers={"identity.office.created": slow})
    await bus.subscribe(queue, consumer.routing_keys, consumer)
    twice, thrice = _office_event(1), _office_event(2)
    await bus.publish(twice)
    await bus.publish(twice)
    await asyncio.gather(*(bus.publish(thrice) for _ in range(3)))
    await wait_for(lambda: db["processed_events"].count_documents({}), message="processing")
    await wait_for(lambda: _queue_empty(amqp_admin, queue), message="all 5 deliveries acked")
    assert sorted(calls) == sorted([twice.id, thrice.id])


async def _queue_empty(admin: dict[str, Any], queue: str) -> bool:
    ch = await admin["conn"].channel()
    try:
        q = await ch.declare_queue(queue, passive=True)
        res = q.declaration_result
        return res.message_count == 0 and res.consumer_count == 1
    finally:
        await ch.close()


async def _message_count(admin: dict[str, Any], queue: str) -> int:
    ch = await admin["conn"].channel()
    try:
        return int((await ch.declare_queue(queue, passive=True)).declaration_result.message_count)
    finally:
        await ch.close()


async def test_failing_handler_dead_lettered_after_exactly_the_limit(buses, db, unique, amqp_admin) -> None:
    bus = await buses()
    queue = _queue(unique, amqp_admin)
    attempts: list[str] = []

    async def failing(ev: Envelope) -> None:
        attempts.append(ev.id)
        raise RuntimeError("always")

    consumer = IdempotentConsumer(db, service="charts", handlers={"identity.office.created": failing})
    await bus.subscribe(queue, consumer.routing_keys, consumer)
    ev = _office_event(3)
    await bus.publish(ev)
    dlq = await amqp_admin["channel"].declare_queue(f"{queue}.dlq", passive=True)
    msg = await wait_for(lambda: dlq.get(fail=False, no_ack=True), message="message in the DLQ")
    assert attempts == [ev.id] * LIMIT
    assert Envelope.model_validate_json(msg.body) == ev and msg.message_id == ev.id
    assert msg.headers[REASON_HEADER] == f"handler failed {LIMIT} times: RuntimeError"
    assert msg.headers[QUEUE_HEADER] == queue
    assert await db["processed_events"].count_documents({}) == 0
    assert await _message_count(amqp_admin, queue) == 0


async def test_outage_write_succeeds_then_relay_delivers_each_once(buses, db, unique, amqp_admin, broker_proxy,
                                                                   proxied_url) -> None:
    consumer_bus = await buses()  # direct to the broker: the consumer side stays up
    queue = _queue(unique, amqp_admin)
    rec = Recorder()
    consumer = IdempotentConsumer(db, service="charts", handlers={"identity.office.created": rec})
    await consumer_bus.subscribe(queue, consumer.routing_keys, consumer)

    publisher = await buses(proxied_url, publish_timeout=0.5)  # the publisher's network path can be cut
    relay = OutboxRelay(db, ["offices"], publisher)
    await broker_proxy.cut()
    await wait_for(lambda: _not(publisher.ping()), message="publisher notices the outage")
    events = [_office_event(10 + i) for i in range(4)]
    # a document's events share its subject: their order is kept end to end (other subjects' may interleave)
    events = [e.model_copy(update={"subject": "a"}) if i in (0, 1, 3) else e for i, e in enumerate(events)]
    await db.offices.insert_one(with_events({"_id": "a"}, events[0], events[1]))
    await db.offices.insert_one(with_events({"_id": "b"}, events[2]))
    await db.offices.update_one({"_id": "a"}, push_events({"$set": {"x": 1}}, events[3]))
    assert await relay.run_once() == 0
    assert await relay.pending() == 4
    await broker_proxy.restore()
    await wait_for(publisher.ping, message="publisher reconnects")
    relay.start()
    try:
        await wait_for(lambda: len(rec.events) >= 4, message="all four delivered")
        await wait_for(lambda: _queue_empty(amqp_admin, queue), message="acked")
    finally:
        await relay.stop()
    assert sorted(e.id for e in rec.events) == sorted(e.id for e in events)
    assert [e.id for e in rec.events if e.id in {events[0].id, events[1].id, events[3].id}] == \
        [events[0].id, events[1].id, events[3].id]
    assert await relay.pending() == 0


async def _not(value: Any) -> bool:
    return not await value


async def test_unroutable_publish_raises(buses) -> None:
    bus = await buses()
    with pytest.raises(PublishFailed) as info:
        await bus.publish(_office_event())
    assert info.value.unroutable
    assert await bus.ping()  # the channel survives a return


async def test_publish_during_outage_is_bounded(buses, broker_proxy, proxied_url, unique, amqp_admin) -> None:
    bus = await buses(proxied_url, publish_timeout=0.5)
    await bus.declare_queue(_queue(unique, amqp_admin), ["identity.#"])
    await bus.publish(_office_event())
    await broker_proxy.cut()
    loop = asyncio.get_running_loop()
    for _ in range(2):
        start = loop.time()
        with pytest.raises(PublishFailed) as info:
            await asyncio.wait_for(bus.publish(_office_event()), 5)
        assert not info.value.unroutable
        assert loop.time() - start < 1.5
    await broker_proxy.restore()
    await wait_for(bus.ping, message="reconnected")
    await bus.publish(_office_event())  # works again after the outage


async def test_closed_bus_fails_fast(buses) -> None:
    bus = await buses()
    await bus.close()
    with pytest.raises(PublishFailed):
        await bus.publish(_office_event())
    assert not await bus.ping()


async def test_malformed_message_goes_straight_to_dlq_with_its_reason(buses, db, unique, amqp_admin) -> None:
    bus = await buses()
    queue = _queue(unique, amqp_admin)
    rec = Recorder()
    await bus.subscribe(queue, ["identity.#"], rec)
    exchange = await amqp_admin["channel"].get_exchange(f"test.{unique}")
    good = json.loads(_office_event().model_dump_json())
    bad = {
        b"not json": "malformed: not JSON",
        json.dumps({"id": "x", "type": "identity.office.created"}).encode(): "malformed envelope: source: missing",
        json.dumps({**good, "type": "identity.office.renamed"}).encode(): "unknown type: identity.office.renamed",
        json.dumps({**good, "data": {"office_id": "o"}}).encode(): "malformed data: owner_id: missing",
    }
    for body in bad:
        await exchange.publish(aio_pika.Message(body, message_id="bad"), routing_key="identity.office.created")
    dlq = await amqp_admin["channel"].declare_queue(f"{queue}.dlq", passive=True)
    got = {}
    for _ in bad:
        msg = await wait_for(lambda: dlq.get(fail=False, no_ack=True), message="dead letter")
        got[msg.body] = msg
    assert set(got) == set(bad)
    for body, reason in bad.items():
        assert got[body].headers[REASON_HEADER].startswith(reason), got[body].headers[REASON_HEADER]
        assert got[body].headers["x-clinishare-deliveries"] == 1  # at once: never retried
        assert got[body].message_id == "bad"
    assert rec.events == []
    # the consumer is still alive afterwards
    ev = _office_event()
    await bus.publish(ev)
    await wait_for(lambda: rec.events, message="good message after bad ones")


async def test_unknown_fields_in_envelope_and_data_are_ignored(buses, unique, amqp_admin) -> None:
    bus = await buses()
    queue = _queue(unique, amqp_admin)
    rec = Recorder()
    await bus.subscribe(queue, ["identity.#"], rec)
    ev = _office_event(5)
    newer = json.loads(ev.model_dump_json())
    newer["trace_state"] = "rolled out later"
    newer["data"]["region"] = "north"
    exchange = await amqp_admin["channel"].get_exchange(f"test.{unique}")
    await exchange.publish(aio_pika.Message(json.dumps(newer).encode(), message_id=ev.id),
                           routing_key=ev.type)
    await wait_for(lambda: rec.events, message="the newer event is processed")
    assert rec.events[0].id == ev.id and rec.events[0].payload() == ev.payload()
    dlq = await amqp_admin["channel"].declare_queue(f"{queue}.dlq", passive=True)
    assert await dlq.get(fail=False) is None


async def test_queue_is_quorum_and_older_arguments_do_not_stop_a_start(buses, unique, amqp_admin) -> None:
    bus = await buses(delivery_limit=3)
    queue = _queue(unique, amqp_admin)
    await bus.declare_queue(queue, ["identity.#"])
    await bus.declare_queue(queue, ["identity.#"])  # idempotent
    ch = await amqp_admin["conn"].channel()
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):  # so it IS a quorum queue
        await ch.declare_queue(queue, durable=True, arguments={"x-queue-type": "classic"})
    # a queue declared by older code with arguments (limit, dead-lettering) is used as it is
    old = _queue(unique, amqp_admin, "old")
    ch = await amqp_admin["conn"].channel()
    await ch.declare_queue(old, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 7,
                                                         "x-dead-letter-exchange": "elsewhere"})
    rec = Recorder()
    await bus.subscribe(old, ["identity.#"], rec)
    ev = _office_event(8)
    await bus.publish(ev)
    await wait_for(lambda: rec.events, message="consumed from the queue declared by older code")
    with pytest.raises(ValueError):
        RabbitBus("amqp://x", delivery_limit=0)


async def test_start_while_the_broker_is_down_then_serve_when_it_returns(buses, db, unique, amqp_admin, broker_proxy,
                                                                      proxied_url) -> None:
    await broker_proxy.cut()
    bus = await buses(proxied_url, connect_timeout=0.5, max_retry_seconds=0.5)  # returns: no exception
    assert not await bus.ping()
    queue = _queue(unique, amqp_admin)
    rec = Recorder()
    await bus.subscribe(queue, ["identity.#"], rec)  # remembered until the broker answers
    with pytest.raises(PublishFailed):
        await bus.publish(_office_event())
    await broker_proxy.restore()
    await wait_for(bus.ping, timeout=15, message="connected once the broker is back")
    ev = _office_event(9)
    await bus.publish(ev)
    await wait_for(lambda: rec.events, message="the deferred subscription consumes")


async def test_one_subjects_events_are_handled_in_order_while_others_run_concurrently(buses, unique,
                                                                                      amqp_admin) -> None:
    bus = await buses(prefetch=16)
    queue = _queue(unique, amqp_admin)
    seen: dict[str, list[int]] = {"s1": [], "s2": []}
    running = 0
    most_at_once = 0

    async def handler(event: Envelope) -> None:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        # an uneven wait, as a database round trip gives: later events would overtake earlier ones
        await asyncio.sleep(0.02 if event.data["version"] % 3 == 0 else 0.001)
        seen[event.subject].append(event.data["version"])
        running -= 1

    await bus.subscribe(queue, ["identity.office.created"], handler)
    for v in range(1, 31):
        for subject in ("s1", "s2"):
            ev = make_event(OfficeCreated(office_id=subject, owner_id="p1", name="N", version=v,
                                          members=[OfficeMember(account_id="p1", role="practitioner")]),
                            source="identity", subject=subject)
            await bus.publish(ev)
    await wait_for(lambda: len(seen["s1"]) == 30 and len(seen["s2"]) == 30, message="all handled")
    assert seen["s1"] == list(range(1, 31)) and seen["s2"] == list(range(1, 31))
    assert most_at_once == 2  # the two subjects did run side by side


async def test_delete_broker_objects_removes_queues_exchanges_and_their_companions(amqp_url: str, unique: str) -> None:
    from clinishare_shared.testing import delete_broker_objects

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for q in (f"t.{unique}", f"t.{unique}.dlq"):
            await channel.declare_queue(q)
        for x in (f"x.{unique}", f"x.{unique}.dlx"):
            await channel.declare_exchange(x, aio_pika.ExchangeType.TOPIC)
        await delete_broker_objects(amqp_url, queues=[f"t.{unique}", f"never.{unique}"], exchanges=[f"x.{unique}"])
        for q in (f"t.{unique}", f"t.{unique}.dlq"):
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await (await connection.channel()).declare_queue(q, passive=True)
        for x in (f"x.{unique}", f"x.{unique}.dlx"):
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await (await connection.channel()).declare_exchange(x, passive=True)


async def test_publish_many_has_a_batch_in_flight_and_reports_each_outcome(buses, unique, amqp_admin) -> None:
    from clinishare_shared.events import ChartNoteAdded

    bus = await buses()
    got = Recorder()
    await bus.subscribe(_queue(unique, amqp_admin), ["identity.office.created"], got)
    stray = make_event(ChartNoteAdded(note_id="n", chart_id="c", chart_author_id="a", author_id="b"),
                       source="charts", subject="c")  # nobody is bound for it: returned, not confirmed
    events = [_office_event(i) for i in range(20)] + [stray] + [_office_event(i) for i in range(20, 40)]
    results = await bus.publish_many(events)
    assert [r is None for r in results] == [e is not stray for e in events]
    assert results[20] is not None and results[20].unroutable
    await wait_for(lambda: len(got.events) == 40, message="every confirmed event consumed")
    assert sorted(e.id for e in got.events) == sorted(e.id for e in events if e is not stray)
    assert await bus.ping()
    await bus.close()
    closed = await bus.publish_many(events[:3])  # after close: every one fails fast, none hangs
    assert all(r is not None and not r.unroutable for r in closed)


@pytest.mark.parametrize("prefetch", [1, 4])
async def test_the_prefetch_bounds_the_events_handled_at_once(buses, unique, amqp_admin, prefetch: int) -> None:
    """The consumer is handed ``prefetch`` unacked messages and no more: that many different subjects'
    events run at once, never more, however many wait in the queue."""
    from clinishare_shared.runtime import make_bus
    from clinishare_shared.settings import ServiceSettings

    settings = ServiceSettings(amqp_url="amqp://x", consumer_prefetch=prefetch)
    assert make_bus(settings).prefetch == prefetch  # what a service's settings ask for reaches its bus

    bus = await buses(prefetch=prefetch)
    queue = _queue(unique, amqp_admin)
    running, most, done = 0, 0, 0
    release = asyncio.Event()

    async def slow(ev: Envelope) -> None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        done += 1

    await bus.subscribe(queue, ["identity.office.created"], slow)
    for i in range(12):
        await bus.publish(_office_event(i))
    await wait_for(lambda: running == prefetch, message=f"{prefetch} events running")
    await asyncio.sleep(0.3)  # give the broker every chance to hand over more than it may
    assert most == prefetch
    release.set()
    await wait_for(lambda: done == 12)
    assert most == prefetch
