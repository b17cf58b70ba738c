"""Confirms lost when the broker closes connections (``rabbitmqctl close_all_connections``) need not turn
into duplicates: the bus says which failed publishes are in doubt, and the events stream says which of
those the broker routed (the relay's side is in ``test_outbox_claims.py``; the whole in the fault suite's
connections-closed scenario). On a private RabbitMQ node: this test closes every connection of its broker."""

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from clinishare_shared.bus.base import PublishFailed
from clinishare_shared.bus.rabbit import RabbitBus
from clinishare_shared.bus.stream import StreamSpec
from clinishare_shared.events import ChartNoteAdded, Envelope, make_event
from clinishare_shared.processes import PrivateRabbit
from clinishare_shared.testing import wait_for
from clinishare_shared.ferretdb import free_port

pytestmark = pytest.mark.integration  # a RabbitMQ node of its own
EXCHANGE = "lost.confirms"
QUEUE = "lost.confirms.all"


@pytest.fixture
def rabbit() -> Any:
    port = free_port()
    node = PrivateRabbit(Path(tempfile.mkdtemp(prefix="lost-confirms-")), node=f"lost-confirms-{port}@localhost",
                         port=port, dist_port=next(p for p in iter(free_port, None) if p != port))
    node.start()
    try:
        yield node
    finally:
        node.stop()


async def _queued_in(rabbit: PrivateRabbit) -> set[str]:
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(QUEUE, passive=True)
        ids: set[str] = set()
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            ids.add(message.message_id or "?")
        return ids


async def test_a_lost_confirm_is_in_doubt_and_the_stream_tells_whether_it_was_routed(rabbit: PrivateRabbit) -> None:
    """The bus contract the relay relies on, against ground truth: events published without pause while the
    broker closes every connection. A failure in doubt was sent; the stream says whether it was routed,
    and it was exactly when the queue holds it. A failure not in doubt was never routed. Repeated until a
    close caught events in flight."""
    connection = await aio_pika.connect(rabbit.url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(exchange, routing_key="#")
    await connection.close()
    bus = RabbitBus(rabbit.url, exchange=EXCHANGE, stream=StreamSpec(f"{EXCHANGE}.stream"), publish_timeout=10)
    await bus.start()
    failed: dict[str, PublishFailed] = {}
    sent: list[str] = []
    closes = 0
    try:
        while closes < 10 and not any(f.in_doubt for f in failed.values()):
            closing = asyncio.create_task(asyncio.to_thread(rabbit.ctl, "close_all_connections", "lost confirms test"))
            closes += 1
            since = datetime.now(UTC)
            while not closing.done():  # publish without pause until the close is done
                events = [_event(len(sent) + i) for i in range(200)]
                sent += [e.id for e in events]
                for event, failure in zip(events, await bus.publish_many(events)):
                    if failure is not None:
                        failed[event.id] = failure
            await closing
            assert await bus.wait_connected(timeout=60)
        doubtful = {i for i, f in failed.items() if f.in_doubt}
        answer: dict[str, set[str] | None] = {}

        async def asked() -> bool:  # while the connection is being restored the bus says "not now"
            try:
                answer["routed"] = await bus.routed_since(doubtful, since)
            except PublishFailed:
                return False
            return True

        await wait_for(asked, timeout=60, interval=0.2, message="the bus could read the events stream")
        routed = answer["routed"]
    finally:
        await bus.close()
    assert doubtful, f"no close in {closes} caught an event in flight: the case was not tested"
    assert not [f for f in failed.values() if f.unroutable]
    in_queue = await _queued_in(rabbit)
    assert routed == doubtful & in_queue  # the stream and the queue agree on what went out
    assert not {i for i, f in failed.items() if not f.sent} & in_queue  # what was not sent never arrived
    assert set(sent) - set(failed) <= in_queue  # what was confirmed is there
    print(f"lost confirms: {closes} closes, {len(failed)} publishes failed, {len(doubtful)} in doubt, "
          f"{len(routed)} of them routed")


def _event(i: int) -> Envelope:
    return make_event(ChartNoteAdded(note_id=f"n{i}", chart_id=f"c{i}", chart_author_id="a", author_id="b"),
                      source="charts", subject=f"c{i}")
