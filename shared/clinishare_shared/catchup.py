"""Projections catch up: a service whose identity projection is empty (a new service, a new replica set
on a fresh database, a projection dropped to be rebuilt) replays the identity facts from the analytics
stream (which keeps every event for its retention, default 30 days) through its projection handlers, in
the background, while its queue keeps delivering new events. Projection handlers are order-safe and
idempotent (versioned snapshots, a deletion that wins), so a replayed fact never undoes a newer one.

After the replay the service re-evaluates what it decided without the facts (``after``): notify makes due
again the e-mails it skipped for want of an address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aio_pika
import structlog

from clinishare_shared.bus.base import Handler
from clinishare_shared.bus.rabbit import read_event

log = structlog.get_logger("clinishare.catchup")


async def replay_stream(url: str, stream: str, handlers: Mapping[str, Handler], *, idle_seconds: float = 2.0,
                        max_seconds: float = 600.0) -> int:
    """Read ``stream`` from its first offset and hand every event whose type is in ``handlers`` to it,
    until nothing new arrived for ``idle_seconds`` (caught up). Returns how many events were applied."""
    loop = asyncio.get_running_loop()
    applied = 0
    last = loop.time()
    failure: list[BaseException] = []
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=200)  # a stream consumer needs a prefetch and acks
        queue = await channel.declare_queue(stream, passive=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal applied, last
            last = loop.time()
            event, _ = read_event(message.body)
            handler = handlers.get(event.type) if event is not None else None
            try:
                if handler is not None and event is not None:
                    await handler(event)
                    applied += 1
            except Exception as exc:  # stop the replay; the queue still delivers what is new
                failure.append(exc)
            await message.ack()

        tag = await queue.consume(on_message, arguments={"x-stream-offset": "first"})
        deadline = loop.time() + max_seconds
        while not failure and loop.time() - last < idle_seconds and loop.time() < deadline:
            await asyncio.sleep(0.1)
        await queue.cancel(tag)
    if failure:
        raise failure[0]
    return applied


async def catch_up_if_empty(*, db: Any, collection: str, url: str | None, stream: str,
                            handlers: Mapping[str, Handler],
                            after: Callable[[], Awaitable[Any]] | None = None) -> int:
    """Replay when ``collection`` (the projection's accounts) is empty; then run ``after``."""
    if not url or await db[collection].count_documents({}, limit=1):
        return 0
    try:
        applied = await replay_stream(url, stream, handlers)
    except Exception:
        log.warning("projection_catch_up_failed", stream=stream, exc_info=True)
        return 0
    log.info("projection_caught_up", stream=stream, events=applied)
    if after is not None:
        await after()
    return applied
