"""Follow mode against the real broker: new events are counted as they come, the reports are rewritten
when the stream goes quiet, and a stop leaves the saved offset where the next run resumes."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
import aio_pika
import pytest

from clinishare_analytics.consumer import run
from clinishare_analytics.report import TYPE_CSV, load_tally
from clinishare_analytics.settings import AnalyticsSettings
from clinishare_shared.bus.rabbit import RabbitBus
from clinishare_shared.bus.stream import StreamSpec, stream_name
from clinishare_shared.events import FormCreated, make_event
from clinishare_shared.testing import wait_for


def counted(out: Path) -> int:
    path = out / TYPE_CSV
    if not path.exists():
        return 0
    with path.open() as fh:
        return sum(int(r["count"]) for r in csv.DictReader(fh))


async def test_follow_counts_new_events_and_stops_cleanly(amqp_url: str, unique: str, tmp_path: Path) -> None:
    exchange = f"test.{unique}"
    bus = RabbitBus(amqp_url, exchange=exchange, stream=StreamSpec(stream_name(exchange)))
    await bus.start()

    async def publish(n: int, start: int) -> None:
        for i in range(start, start + n):
            await bus.publish(make_event(FormCreated(form_id=f"f{i}", author_id="a", version=1), source="forms",
                                         subject=f"f{i}"))

    try:
        await publish(3, 0)
        settings = AnalyticsSettings(amqp_url=amqp_url, stream=stream_name(exchange), out_dir=tmp_path,
                                     idle_seconds=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(run(settings, follow=True, progress=False, stop=stop))
        await wait_for(lambda: counted(tmp_path) == 3, message="the first three counted")
        await publish(2, 3)
        await wait_for(lambda: counted(tmp_path) == 5, message="two more, as they came")
        stop.set()
        result = await asyncio.wait_for(task, 10)
        assert result.counted == 5 and result.next_offset == 5
        assert load_tally(tmp_path).next_offset == 5  # type: ignore[union-attr]
        again = await run(settings, progress=False)  # resumes after the fifth: nothing new
        assert again.read == 0 and counted(tmp_path) == 5
    finally:
        await bus.close()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(stream_name(exchange))
            for name in (exchange, f"{exchange}.dlx"):
                await channel.exchange_delete(name)
