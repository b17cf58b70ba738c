"""An in-memory bus for the embedded default and unit tests, with the broker's semantics: unroutable
publishes fail, a failing handler is retried up to the delivery limit, then dead-lettered."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from clinishare_shared.bus.base import EventBus, Handler, PublishFailed, topic_matches
from clinishare_shared.events import Envelope
from clinishare_shared.observability import carrier, consuming, dead_lettered, published

log = structlog.get_logger("clinishare.bus.memory")
PUBLISHED_KEPT = 10_000  # the newest events published, for tests and a look while debugging


@dataclass
class _Subscription:
    queue: str
    patterns: list[str]
    handler: Handler
    inbox: asyncio.Queue[tuple[str, dict[str, str]]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class InMemoryBus(EventBus):
    """``stream=True`` stands in for the RabbitMQ event stream bound to ``#`` (what services get): every
    publish is routable, as on the broker, and lands in ``published``. ``published`` keeps the newest
    ``PUBLISHED_KEPT`` events only: ``make run`` publishes on this bus for as long as it runs."""

    def __init__(self, *, delivery_limit: int = 5, stream: bool = False) -> None:
        self.delivery_limit = delivery_limit
        self.stream = stream
        self._subs: dict[str, _Subscription] = {}
        self.dead_letters: dict[str, list[Envelope]] = defaultdict(list)
        self.published: deque[Envelope] = deque(maxlen=PUBLISHED_KEPT)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.available = True  # tests switch this off to simulate an outage

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for sub in self._subs.values():
            if sub.task:
                sub.task.cancel()
        for sub in self._subs.values():
            if sub.task:
                try:
                    await sub.task
                except asyncio.CancelledError:
                    pass
        self._subs.clear()

    async def ping(self) -> bool:
        return self.available

    async def publish(self, event: Envelope) -> None:
        if not self.available:
            raise PublishFailed("in-memory bus unavailable")
        targets = [s for s in self._subs.values() if any(topic_matches(p, event.type) for p in s.patterns)]
        if not targets and not self.stream:
            raise PublishFailed(f"unroutable: no queue bound for {event.type}", unroutable=True)
        body = event.model_dump_json()
        self.published.append(event)
        published(event)
        headers = carrier()
        for sub in targets:
            self._in_flight += 1
            self._idle.clear()
            sub.inbox.put_nowait((body, headers))

    async def subscribe(self, queue: str, routing_keys: Sequence[str], handler: Handler) -> None:
        if queue in self._subs:
            self._subs[queue].patterns = sorted(set(self._subs[queue].patterns) | set(routing_keys))
            self._subs[queue].handler = handler
            return
        sub = _Subscription(queue=queue, patterns=list(routing_keys), handler=handler)
        self._subs[queue] = sub
        sub.task = asyncio.get_running_loop().create_task(self._consume(sub), name=f"bus:{queue}")

    async def _consume(self, sub: _Subscription) -> None:
        while True:
            body, headers = await sub.inbox.get()
            try:
                event = Envelope.model_validate_json(body)
                for attempt in range(1, self.delivery_limit + 1):
                    try:
                        with consuming(sub.queue, event, headers):
                            await sub.handler(event)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.warning("handler_failed", queue=sub.queue, event_id=event.id,
                                    event_type=event.type, attempt=attempt, exc_info=True)
                else:
                    self.dead_letters[sub.queue].append(event)
                    dead_lettered(sub.queue, event.type)
                    log.error("dead_lettered", queue=sub.queue, event_id=event.id, event_type=event.type)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every published event has been handled (or dead-lettered)."""
        await asyncio.wait_for(self._idle.wait(), timeout)
