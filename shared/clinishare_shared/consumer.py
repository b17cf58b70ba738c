"""The idempotent consumer: each event id is processed once per consuming service.

The handler runs first and the event id is recorded after it succeeded, so a failure leaves nothing
recorded and the redelivery runs the handler again (never ack a failure). Two deliveries racing each
other can both run the handler, so handlers are themselves idempotent (version-checked upserts,
deterministic ids); the record makes every later redelivery a cheap no-op.

Within one process, deliveries of the same event id are serialized (a per-id lock), so duplicates that
arrive together (prefetch > 1: the publisher retried, the relay re-published after a crash) run the
handler once; the second one finds the record once the first has finished. Across replicas the handler's
own idempotency is still what makes a race harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from clinishare_shared.foreground import Foreground
from clinishare_shared.locks import KeyedLocks
from clinishare_shared.mongo import ensure_ttl_index
from pymongo.errors import DuplicateKeyError

from clinishare_shared.bus.base import Handler
from clinishare_shared.events import Envelope

log = structlog.get_logger("clinishare.consumer")
PROCESSED = "processed_events"


class IdempotentConsumer:
    def __init__(self, db: Any, *, service: str, handlers: Mapping[str, Handler],
                 retention_days: int = 30, foreground: Foreground | None = None) -> None:
        self.db = db
        self.foreground = foreground or Foreground()  # an event in processing is foreground work (see there)
        self.service = service
        self.handlers = dict(handlers)
        self.retention_days = retention_days
        self._locks = KeyedLocks()

    @property
    def routing_keys(self) -> list[str]:
        return sorted(self.handlers)

    async def ensure_indexes(self) -> None:
        await ensure_ttl_index(self.db[PROCESSED], "processed_at",
                               expire_after_seconds=self.retention_days * 86400, name="processed_ttl")

    async def __call__(self, event: Envelope) -> None:
        with self.foreground.work():
            async with self._locks.hold(event.id):
                await self._process(event)

    async def _process(self, event: Envelope) -> None:
        with structlog.contextvars.bound_contextvars(
            correlation_id=event.correlation_id, event_id=event.id, event_type=event.type, consumer=self.service
        ):
            if await self.db[PROCESSED].find_one({"_id": event.id}, {"_id": 1}):
                log.info("event_duplicate_skipped")
                return
            handler = self.handlers.get(event.type)
            if handler is None:
                log.info("event_ignored")
            else:
                await handler(event)
            try:
                await self.db[PROCESSED].insert_one(
                    {"_id": event.id, "type": event.type, "processed_at": datetime.now(UTC)}
                )
            except DuplicateKeyError:
                pass
            log.info("event_processed")
