"""Read the event stream with aio-pika (AMQP 0.9.1 on the broker's usual port; no stream plugin needed):
``x-stream-offset`` says where to start, a prefetch is required, every message is acked by hand.

The offset is ours to keep: it is saved with the counts and the ids counted, in one atomic write, every
``save_every`` events and at the end. A restart resumes from it; an event already counted (a redelivery,
or the same event published twice) is recognised by its id and not counted again.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import structlog
from pydantic import ValidationError
from tqdm import tqdm

from clinishare_analytics.report import load_tally, save_tally, write_reports
from clinishare_analytics.settings import AnalyticsSettings
from clinishare_analytics.tally import Tally
from clinishare_shared.events import Envelope

log = structlog.get_logger("clinishare.analytics")

Offset = int | str | datetime
NAMED_OFFSETS = ("first", "last", "next")


def parse_offset(text: str) -> Offset:
    """``first`` | ``last`` | ``next`` | an offset number | an ISO 8601 time (with its zone)."""
    if text in NAMED_OFFSETS:
        return text
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an offset: {text!r} (first, last, next, a number or an ISO time)") from None
    if moment.tzinfo is None:
        raise ValueError("a start time needs its time zone, e.g. 2026-03-01T00:00:00Z")
    return moment


@dataclass
class RunResult:
    read: int
    counted: int
    next_offset: int | None
    files: list[Path]


async def last_offset(connection: aio_pika.abc.AbstractConnection, stream: str, *, wait: float = 1.0) -> int | None:
    """The stream's last offset now, or None if it is empty. (A 3.10 stream reports no message count, so
    we read its last chunk, which ends with the last message.)"""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1000)
    queue = await channel.declare_queue(stream, passive=True)
    highest: list[int] = []
    arrived = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        highest.append(int(message.headers["x-stream-offset"]))  # type: ignore[arg-type]
        await message.ack()
        arrived.set()

    await queue.consume(on_message, arguments={"x-stream-offset": "last"})
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(arrived.wait(), wait)
    if highest:
        # the rest of the last chunk comes in one go; give it a moment to land
        count = -1
        while count != len(highest):
            count = len(highest)
            await asyncio.sleep(0.05)
    await channel.close()
    return max(highest) if highest else None


async def run(settings: AnalyticsSettings, *, start: Offset = "first", follow: bool = False, reset: bool = False,
              progress: bool = True, stop: asyncio.Event | None = None, limit: int | None = None) -> RunResult:
    """Catch up with the stream (or follow it with ``follow``) and write the reports.

    ``start`` applies only without saved progress (or with ``reset``); otherwise the run resumes where the
    last one stopped. ``limit``: read at most this many events in this run (a bounded batch).
    """
    out_dir = settings.out_dir
    tally = None if reset else load_tally(out_dir)
    if tally is not None and tally.next_offset is not None:
        start = tally.next_offset
    tally = tally or Tally()
    connection = await aio_pika.connect(settings.amqp_url)
    read = counted = since_save = 0
    bar: Any = None
    try:
        end = await last_offset(connection, settings.stream)
        nothing_new = end is None or (isinstance(start, int) and start > end) or start in ("last", "next")
        log.info("analytics_start", stream=settings.stream, start=str(start), last_offset=end, follow=follow)
        if nothing_new and not follow:
            return _finish(settings, tally, read, counted)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=settings.prefetch)
        queue = await channel.declare_queue(settings.stream, passive=True)
        inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(inbox.put, arguments={"x-stream-offset": start})
        bar = tqdm(total=None, unit="event", desc="catching up", disable=not progress, leave=False)
        while stop is None or not stop.is_set():
            try:
                message = await asyncio.wait_for(inbox.get(), settings.idle_seconds)
            except asyncio.TimeoutError:
                if not follow:
                    log.warning("analytics_stream_ended_early", waited_for=end, next_offset=tally.next_offset)
                    break
                save_tally(out_dir, tally, stream=settings.stream)
                write_reports(out_dir, tally)
                since_save = 0
                continue
            offset = int(message.headers["x-stream-offset"])  # type: ignore[arg-type]
            if bar.total is None and end is not None:
                bar.total = max(end - offset + 1, 1)
            try:
                event = Envelope.model_validate_json(message.body)
            except ValidationError:
                # not an event: skip it (analytics must not stall on one bad record), never count it
                log.error("analytics_not_an_event_skipped", offset=offset, message_id=message.message_id)
                tally.next_offset = offset + 1
            else:
                counted += tally.apply(event, offset=offset)
            await message.ack()
            read += 1
            since_save += 1
            bar.update(1)
            if since_save >= settings.save_every:
                tally.forget_ids_before(settings.keep_ids_days)
                save_tally(out_dir, tally, stream=settings.stream)
                since_save = 0
            if (not follow and end is not None and offset >= end) or (limit is not None and read >= limit):
                break
        await channel.close()
    finally:
        if bar is not None:
            bar.close()
        await connection.close()
    return _finish(settings, tally, read, counted)


def _finish(settings: AnalyticsSettings, tally: Tally, read: int, counted: int) -> RunResult:
    tally.forget_ids_before(settings.keep_ids_days)
    save_tally(settings.out_dir, tally, stream=settings.stream)
    files = write_reports(settings.out_dir, tally)
    log.info("analytics_done", read=read, counted=counted, duplicates=read - counted,
             next_offset=tally.next_offset, out_dir=str(settings.out_dir))
    return RunResult(read=read, counted=counted, next_offset=tally.next_offset, files=files)
