"""The replayable event stream against the REAL broker (RabbitMQ 3.10 here): declared by the bus at start,
idempotently, bound to every routing key, with retention from settings; readable from an offset or a time."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import pytest

from clinishare_shared.bus.base import PublishFailed
from clinishare_shared.bus.rabbit import RabbitBus, forced_close
from clinishare_shared.bus.stream import StreamSpec, declare_stream, stream_name
from clinishare_shared.events import ChartCreated, Envelope, FormCreated, make_event
from clinishare_shared.settings import ServiceSettings


@pytest.fixture
def names(unique: str, amqp_admin: dict[str, Any]) -> dict[str, str]:
    exchange = f"test.{unique}"
    amqp_admin["exchanges"] += [exchange, f"{exchange}.dlx"]
    amqp_admin["queues"].append(stream_name(exchange))
    return {"exchange": exchange, "stream": stream_name(exchange)}


async def _read(conn: aio_pika.abc.AbstractConnection, stream: str, offset: Any, n: int) -> list[tuple[int, Envelope]]:
    """The first ``n`` messages of the stream from ``offset`` (manual acks; a stream needs a prefetch)."""
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=50)
    queue = await channel.declare_queue(stream, passive=True)
    got: list[tuple[int, Envelope]] = []
    done = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        got.append((int(message.headers["x-stream-offset"]), Envelope.model_validate_json(message.body)))
        await message.ack()
        if len(got) >= n:
            done.set()

    await queue.consume(on_message, arguments={"x-stream-offset": offset})
    await asyncio.wait_for(done.wait(), 10)
    await channel.close()
    return got[:n]


def _chart(i: int) -> Envelope:
    return make_event(ChartCreated(chart_id=f"c{i}", author_id="p1", patient_id="pt1"), source="charts",
                      subject=f"c{i}")


async def test_bus_declares_the_stream_idempotently_and_every_event_lands_in_it(amqp_url, names, amqp_admin) -> None:
    spec = StreamSpec(name=names["stream"], max_age_days=30)
    first = RabbitBus(amqp_url, exchange=names["exchange"], stream=spec)
    second = RabbitBus(amqp_url, exchange=names["exchange"], stream=spec)
    await first.start()
    await second.start()  # a second service starting: same declaration, no error
    try:
        # no service queue is bound: the stream alone makes these routable (else PublishFailed unroutable)
        events = [_chart(i) for i in range(3)] + [make_event(FormCreated(form_id="f1", author_id="p1", version=1),
                                                             source="forms", subject="f1")]
        for e in events:
            await first.publish(e)
        got = await _read(amqp_admin["conn"], names["stream"], "first", 4)
        assert [e.id for _, e in got] == [e.id for e in events]
        assert [o for o, _ in got] == [0, 1, 2, 3]
        # from an offset: a replay does not consume anything, the same records are there again
        assert [e.id for _, e in await _read(amqp_admin["conn"], names["stream"], 2, 2)] == [events[2].id, events[3].id]
    finally:
        await first.close()
        await second.close()
    # the retention is what settings said: the broker refuses the same name with another x-max-age
    channel = await amqp_admin["conn"].channel()
    await channel.declare_queue(names["stream"], durable=True, arguments=spec.arguments())
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed, match="x-max-age"):
        await channel.declare_queue(names["stream"], durable=True,
                                    arguments=StreamSpec(names["stream"], max_age_days=7).arguments())


async def test_stream_reads_from_a_timestamp(amqp_url, names, amqp_admin) -> None:
    bus = RabbitBus(amqp_url, exchange=names["exchange"], stream=StreamSpec(names["stream"]))
    await bus.start()
    try:
        for i in range(2):
            await bus.publish(_chart(i))
        got = await _read(amqp_admin["conn"], names["stream"], "first", 2)
        later = [_chart(10 + i) for i in range(2)]
        # RabbitMQ resolves a timestamp offset to a chunk (second precision): the next second starts clean
        await asyncio.sleep(1.1)  # a clock boundary, not a wait for a condition
        since = datetime.now(UTC).replace(microsecond=0)
        for e in later:
            await bus.publish(e)
        from_time = await _read(amqp_admin["conn"], names["stream"], since, 2)
        assert [e.id for _, e in from_time] == [e.id for e in later]
        assert len(got) == 2
    finally:
        await bus.close()


async def test_changed_retention_keeps_the_existing_stream_and_still_starts(amqp_url, names, amqp_admin) -> None:
    conn = amqp_admin["conn"]
    await declare_stream(conn, exchange=names["exchange"], spec=StreamSpec(names["stream"], max_age_days=30))
    bus = RabbitBus(amqp_url, exchange=names["exchange"], stream=StreamSpec(names["stream"], max_age_days=7))
    await bus.start()  # logs events_stream_arguments_differ, binds the existing stream
    try:
        event = _chart(1)
        await bus.publish(event)
        assert [e.id for _, e in await _read(conn, names["stream"], "first", 1)] == [event.id]
    finally:
        await bus.close()


def test_settings_name_the_stream_and_its_retention(monkeypatch) -> None:
    s = ServiceSettings()
    assert s.stream == StreamSpec(name="clinishare.events.stream", max_age_days=30)
    assert s.stream.arguments() == {"x-queue-type": "stream", "x-max-age": "30D"}
    assert ServiceSettings(event_exchange="x.y").stream.name == "x.y.stream"
    monkeypatch.setenv("EVENTS_STREAM_MAX_AGE_DAYS", "90")
    monkeypatch.setenv("EVENTS_STREAM_MAX_BYTES", "1000000")
    s = ServiceSettings()
    assert s.stream.arguments() == {"x-queue-type": "stream", "x-max-age": "90D", "x-max-length-bytes": 1000000}
    monkeypatch.setenv("EVENTS_STREAM_MAX_AGE_DAYS", "0")
    with pytest.raises(ValueError):
        ServiceSettings()


def test_services_get_the_stream_from_make_bus() -> None:
    from clinishare_shared.runtime import make_bus

    settings = ServiceSettings(amqp_url="amqp://guest:guest@127.0.0.1:5672/", event_exchange="x.y")
    assert make_bus(settings).stream == StreamSpec(name="x.y.stream")  # type: ignore[attr-defined]
    assert make_bus(ServiceSettings(amqp_url=None)).stream is True  # type: ignore[attr-defined]


async def test_routed_since_finds_what_the_broker_routed_and_only_that(amqp_url, names) -> None:
    """How a relay learns whether an event whose confirm was lost went out: it is in the stream."""
    bus = RabbitBus(amqp_url, exchange=names["exchange"], stream=StreamSpec(names["stream"]))
    await bus.start()
    try:
        before = datetime.now(UTC)
        routed = [_chart(i) for i in range(3)]
        for e in routed:
            await bus.publish(e)
        never = _chart(99)
        assert await bus.routed_since({routed[0].id, routed[2].id, never.id}, before) == {routed[0].id, routed[2].id}
        assert await bus.routed_since(set(), before) == set()
    finally:
        await bus.close()
    # a bus without a stream cannot tell; a closed bus cannot ask now
    assert await RabbitBus(amqp_url, exchange=names["exchange"]).routed_since({routed[0].id}, before) is None
    with pytest.raises(PublishFailed):
        await bus.routed_since({routed[0].id}, before)


def test_only_a_connection_the_broker_closed_while_staying_up_leaves_events_in_doubt() -> None:
    closed = aiormq.exceptions.ConnectionClosed
    assert forced_close(closed(320, "CONNECTION_FORCED - fault test"))
    assert not forced_close(closed(320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"))
    assert not forced_close(closed(501, "FRAME_ERROR"))
    assert not forced_close(aiormq.exceptions.ConnectionSyntaxError(502, "x"))


async def test_a_replay_ends_where_the_stream_ended_although_traffic_goes_on(amqp_url, names) -> None:
    """A fresh replica's catch-up replays what the stream held when it began, then stops, while events
    keep arriving every 20 ms (so the stream is never idle for the replay's idle_seconds): before, it
    tailed the stream until max_seconds, every event going to every catching-up replica as well."""
    from clinishare_shared.catchup import replay_stream
    from clinishare_shared.events import AccountRegistered

    bus = RabbitBus(amqp_url, exchange=names["exchange"], stream=StreamSpec(names["stream"]))
    await bus.start()
    early = [make_event(AccountRegistered(account_id=f"a{i}", kind="practitioner", name=f"Dr {i}"),
                        source="identity", subject=f"a{i}") for i in range(20)]
    for e in early:
        await bus.publish(e)
    stop = asyncio.Event()

    async def traffic() -> int:
        sent = 0
        while not stop.is_set():
            await bus.publish(_chart(100 + sent))
            sent += 1
            await asyncio.sleep(0.02)  # the pace of the traffic, not a wait for a condition
        return sent

    seen: list[str] = []

    async def on_account(event: Envelope) -> None:
        seen.append(event.id)

    async def on_chart(event: Envelope) -> None:
        seen.append(event.id)

    going = asyncio.get_running_loop().create_task(traffic())
    try:
        await asyncio.sleep(0.1)  # some traffic is already flowing when the replay starts
        applied = await asyncio.wait_for(replay_stream(
            amqp_url, names["stream"], {"identity.account.registered": on_account, "charts.chart.created": on_chart},
            idle_seconds=2.0, max_seconds=60), 15)
        assert not going.done()  # the traffic never paused: the end, not the idle rule, stopped it
    finally:
        stop.set()
        await going
        await bus.close()
    assert seen[:20] == [e.id for e in early]  # everything the stream held first, in order
    assert applied == len(seen)


async def test_a_replay_of_an_empty_quiet_stream_ends_when_idle(amqp_url, names) -> None:
    from clinishare_shared.catchup import replay_stream

    bus = RabbitBus(amqp_url, exchange=names["exchange"], stream=StreamSpec(names["stream"]))
    await bus.start()
    try:
        applied = await asyncio.wait_for(replay_stream(amqp_url, names["stream"], {}, idle_seconds=0.3,
                                                       max_seconds=30), 10)
    finally:
        await bus.close()
    assert applied == 0
