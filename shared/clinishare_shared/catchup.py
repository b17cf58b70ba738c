"""Projections catch up: a service whose identity projection is empty (a new service, a new replica set
on a fresh database, a projection dropped to be rebuilt) or behind identity rebuilds it, in the background,
while its queue keeps delivering new events: from identity's paged snapshot
(``GET /v1/internal/identity-snapshot``, when the service has ``INTERNAL_API_KEY``; "behind" is a
projection counting fewer events than identity's high-water mark), else, when empty, from the analytics
stream (which keeps every event for its retention, default 30 days). Either way the facts go through the
projection's own handlers, which are order-safe and idempotent (versioned snapshots, a deletion that wins),
so a replayed or snapshot fact never undoes a newer one.

After the replay the service re-evaluates what it decided without the facts (``after``): notify makes due
again the e-mails it skipped for want of an address.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import aio_pika
import structlog

from clinishare_shared.bus.base import Handler
from clinishare_shared.bus.rabbit import read_event
from clinishare_shared.events import Envelope

log = structlog.get_logger("clinishare.catchup")


def _offset(message: aio_pika.abc.AbstractIncomingMessage) -> int | None:
    """The message's position in the stream (RabbitMQ's ``x-stream-offset`` header)."""
    offset = (message.headers or {}).get("x-stream-offset")
    return offset if isinstance(offset, int) else None


async def replay_stream(url: str, stream: str, handlers: Mapping[str, Handler], *, idle_seconds: float = 2.0,
                        max_seconds: float = 600.0) -> int:
    """Read ``stream`` from its first offset and hand every event whose type is in ``handlers`` to it,
    up to where the stream ended when the replay began, or until nothing new arrived for ``idle_seconds``.
    Returns how many events were applied.

    What the replay owes the projection is what the broker routed before the service's queue was bound
    (the caller binds it first): anything later reaches that queue too. So a second consumer attaches at
    ``next`` before the replay starts; the offset of the first message it receives is where the stream
    ended, and the replay stops once it has handed on everything before it. Under steady traffic a
    stream is never idle: without that end the replay would tail it, every event going to every
    catching-up replica as well, until ``max_seconds``."""
    loop = asyncio.get_running_loop()
    applied = 0
    last = loop.time()
    failure: list[BaseException] = []
    reached = asyncio.Event()
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=200)  # a stream consumer needs a prefetch and acks
        queue = await channel.declare_queue(stream, passive=True)
        end: int | None = None  # the first offset written after the replay began
        done: int | None = None  # the highest offset handed on

        def check() -> None:
            if end is not None and done is not None and done >= end - 1:
                reached.set()

        async def on_next(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal end
            offset = _offset(message)
            if offset is not None and end is None:
                end = offset
                check()
            await message.ack()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal applied, last, done
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
            offset = _offset(message)
            if offset is not None:
                done = offset if done is None else max(done, offset)
                check()

        log.info("stream_replay_started", stream=stream)
        probe = await queue.consume(on_next, arguments={"x-stream-offset": "next"})
        tag = await queue.consume(on_message, arguments={"x-stream-offset": "first"})
        deadline = loop.time() + max_seconds
        while not failure and not reached.is_set() and loop.time() - last < idle_seconds \
                and loop.time() < deadline:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reached.wait(), 0.1)
        await queue.cancel(tag)
        await queue.cancel(probe)
        if reached.is_set():
            log.info("stream_replayed_to_its_end", stream=stream, end_offset=end, applied=applied)
        elif loop.time() >= deadline:
            log.warning("stream_replay_stopped_at_its_deadline", stream=stream, max_seconds=max_seconds,
                        applied=applied)
    if failure:
        raise failure[0]
    return applied


class SnapshotSource(Protocol):
    """Identity's paged snapshot (``IdentityDirectory`` over ``/v1/internal/identity-snapshot``)."""

    async def high_water(self) -> int: ...

    async def snapshot_page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]: ...


async def replay_snapshot(source: SnapshotSource, handlers: Mapping[str, Handler], *, page_size: int = 500) -> int:
    """Page through identity's snapshot and hand every fact (an event's ``type`` and ``data``, as identity
    would publish it now) to the projection handler of its type: the same version-checked code as a live
    event, so a snapshot fact older than what the projection holds changes nothing. Returns how many
    facts were applied (types this reader does not know are skipped, like unknown fields)."""
    applied, cursor = 0, None
    while True:
        items, cursor = await source.snapshot_page(cursor, page_size)
        for item in items:
            handler = handlers.get(item["type"])
            if handler is not None:
                await handler(Envelope(id=f"snapshot:{uuid.uuid4().hex}", type=item["type"], source="identity",
                                       time=datetime.now(UTC), subject="identity-snapshot", data=item["data"]))
                applied += 1
        if cursor is None:
            return applied


async def _snapshot_when_behind(projection: Any, source: SnapshotSource, handlers: Mapping[str, Handler], *,
                                retry_max: float) -> int | None:
    """Ask identity's high-water mark until it answers (identity may start after us: back-off, for ever);
    replay its snapshot if the projection is empty or counts fewer. None: not behind."""
    delay = 0.5
    while True:
        try:
            theirs = await source.high_water()
            mine = await projection.high_water()
            if mine and mine >= theirs:
                log.info("projection_up_to_date", high_water=mine, identity_high_water=theirs)
                return None
            log.info("projection_behind", high_water=mine, identity_high_water=theirs)
            return await replay_snapshot(source, handlers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("projection_catch_up_retrying", source="identity-snapshot", error=type(exc).__name__,
                        retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max)


async def catch_up(*, projection: Any, handlers: Mapping[str, Handler], snapshot: SnapshotSource | None = None,
                   url: str | None = None, stream: str = "", after: Callable[[], Awaitable[Any]] | None = None,
                   retry_max: float = 30.0) -> int:
    """The catch-up step a service runs at start (``Infra.start_consumer(catch_up=...)``), in the background.

    With identity's snapshot (``snapshot``: the service has ``INTERNAL_API_KEY``): when the projection is
    empty or behind identity's high-water mark, replay the snapshot. Without it: when the projection is
    empty, replay the stream from its first offset. Then run ``after``, the service's re-evaluation of
    what it decided without the facts. Returns how many facts or events were applied."""
    if snapshot is not None:
        applied = await _snapshot_when_behind(projection, snapshot, handlers, retry_max=retry_max)
        if applied is None:
            return 0
        source = "identity-snapshot"
    else:
        if not url or await projection.high_water():
            return 0
        try:
            applied = await replay_stream(url, stream, handlers)
        except Exception:
            log.warning("projection_catch_up_failed", source="stream", stream=stream, exc_info=True)
            return 0
        source = "stream"
    log.info("projection_caught_up", source=source, facts=applied)
    if after is not None:
        await after()
    return applied
