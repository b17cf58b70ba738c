from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from clinishare_shared.events import Envelope

Handler = Callable[[Envelope], Awaitable[None]]


class PublishFailed(Exception):
    """The broker did not confirm the event. ``unroutable`` means it answered and no queue took it;
    otherwise the broker could not be reached in time (the relay stops its pass and retries later).
    ``sent`` means the event may have reached the broker (it was handed over and no confirm came), so
    publishing it again may repeat it. ``in_doubt`` means it reached a live broker that closed the
    connection before confirming it: ask ``routed_since`` before publishing it again (a lost confirm is
    then not a duplicate)."""

    def __init__(self, reason: str, *, unroutable: bool = False, in_doubt: bool = False, sent: bool = False) -> None:
        super().__init__(reason)
        self.unroutable = unroutable
        self.in_doubt = in_doubt
        self.sent = sent or in_doubt


class EventBus(ABC):
    """Publish envelopes to one topic exchange; consume them through one durable queue per service.

    A handler that raises is never acked: the message is redelivered, and after ``delivery_limit``
    deliveries it goes to the queue's dead-letter queue.
    """

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def publish(self, event: Envelope) -> None:
        """Return once the broker has confirmed the event; raise PublishFailed otherwise."""

    async def routed_since(self, event_ids: Collection[str], since: datetime) -> set[str] | None:
        """Which of ``event_ids`` (published no earlier than ``since``) the broker routed although their
        confirms were lost; None when this bus cannot tell (then they must be published again). Raises
        PublishFailed when it could tell but cannot now (the broker is away: ask again later)."""
        return None

    async def publish_many(self, events: Sequence[Envelope], *, deadline: float | None = None,
                           traces: Sequence[Mapping[str, Any] | None] | None = None) -> list[PublishFailed | None]:
        """Publish several events at once; for each, None once confirmed or the PublishFailed it met.
        The default publishes one after another and starts none after ``deadline`` (event-loop time):
        the list is then shorter, the rest were not attempted. A broker that pipelines (RabbitBus) has
        them all in flight together. Callers put at most one event per document in one call (per-document
        order)."""
        import asyncio

        from clinishare_shared.observability import publishing

        out: list[PublishFailed | None] = []
        for event, trace in zip(events, traces or [None] * len(events)):
            if deadline is not None and asyncio.get_running_loop().time() > deadline:
                break
            try:
                with publishing(event, trace):  # the producer span continues the trace staged with it
                    await self.publish(event)
                out.append(None)
            except PublishFailed as exc:
                out.append(exc)
        return out

    @abstractmethod
    async def subscribe(self, queue: str, routing_keys: Sequence[str], handler: Handler) -> None: ...

    @abstractmethod
    async def ping(self) -> bool: ...


@functools.lru_cache(maxsize=4096)
def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` is zero or more words. Remembered: the in-memory bus
    asks it for every binding of every queue on every publish, and patterns and event types are few."""
    p, k = pattern.split("."), key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(k)
        if p[i] == "#":
            return any(match(i + 1, jj) for jj in range(j, len(k) + 1))
        return j < len(k) and (p[i] == "*" or p[i] == k[j]) and match(i + 1, j + 1)

    return match(0, 0)
