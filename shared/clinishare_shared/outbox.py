"""The transactional outbox without multi-document transactions.

A state change and the events announcing it are written in ONE single-document MongoDB write: the
events ride in an ``_outbox`` array on the very document that changes (``insert_one`` of a document that
carries them, or an ``update_one`` whose ``$push`` adds them). MongoDB makes a single-document write
atomic on every deployment, including a standalone server and the in-process engine.

The relay finds documents with pending events, publishes them in order with publisher confirms, and
``$pull``s each one only after the broker confirmed it. A crash between the confirm and the pull
re-publishes the event later: delivery is at least once, and consumers are idempotent by event id.
If the broker is down, events stay in their documents and go out when it is back.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog

from clinishare_shared.bus.base import EventBus, PublishFailed
from clinishare_shared.events import Envelope

OUTBOX = "_outbox"
log = structlog.get_logger("clinishare.outbox")


def staged(*events: Envelope) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in events]


def with_events(document: dict[str, Any], *events: Envelope) -> dict[str, Any]:
    """A document to insert that carries its events."""
    return {**document, OUTBOX: staged(*events)}


def push_events(update: dict[str, Any], *events: Envelope) -> dict[str, Any]:
    """An update document that also appends ``events`` to the outbox of the document it changes."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in update.items()}
    out.setdefault("$push", {})[OUTBOX] = {"$each": staged(*events)}
    return out


def strip_outbox(document: dict[str, Any] | None) -> dict[str, Any] | None:
    if document is not None:
        document.pop(OUTBOX, None)
    return document


OUTBOX_INDEX = [(f"{OUTBOX}.id", 1)]


class OutboxRelay:
    def __init__(self, db: Any, collections: Sequence[str], bus: EventBus, *, poll_interval: float = 0.25,
                 batch: int = 100) -> None:
        self.db = db
        self.collections = list(collections)
        self.bus = bus
        self.poll_interval = poll_interval
        self.batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        # event id -> (retry at, current delay): an unroutable event is retried with back-off, so a
        # missing consumer costs one log line per back-off period instead of one per pass
        self._parked: dict[str, tuple[float, float]] = {}
        self.max_park_seconds = 60.0

    async def ensure_indexes(self) -> None:
        for name in self.collections:
            await self.db[name].create_index(OUTBOX_INDEX, sparse=True, name="outbox_pending")

    def retry_parked(self) -> None:
        """Forget the back-off of unroutable events (say, once their consumer is deployed)."""
        self._parked.clear()

    def kick(self) -> None:
        """Ask for a pass now (after a write) instead of at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """One pass over every pending event. Returns how many were published."""
        sent = 0
        for name in self.collections:
            coll = self.db[name]
            async with aclosing(self._pending_docs(coll)) as docs:
                async for doc in docs:
                    for raw in doc.get(OUTBOX, []):
                        event = Envelope.model_validate(raw)
                        now = asyncio.get_running_loop().time()
                        retry_at, delay = self._parked.get(event.id, (0.0, 0.0))
                        if now < retry_at:
                            break  # parked: keep this document's later events behind it, in order
                        try:
                            await self.bus.publish(event)
                        except PublishFailed as exc:
                            if exc.unroutable:
                                # Nobody is bound for it yet: keep it (and the rest of this document's
                                # events, to keep their order) for a later pass; other documents may still go.
                                delay = min(self.max_park_seconds, max(1.0, delay * 2))
                                self._parked[event.id] = (now + delay, delay)
                                log.error("outbox_event_unroutable", event_id=event.id, event_type=event.type,
                                          collection=name, retry_in_seconds=delay)
                                break
                            log.warning("outbox_broker_unavailable", event_id=event.id, reason=str(exc))
                            return sent
                        await coll.update_one({"_id": doc["_id"]}, {"$pull": {OUTBOX: {"id": event.id}}})
                        self._parked.pop(event.id, None)
                        sent += 1
                        self.published += 1
                        log.info("outbox_event_published", event_id=event.id, event_type=event.type)
        return sent

    async def _pending_docs(self, coll: Any) -> AsyncIterator[dict[str, Any]]:
        """Every document with pending events, oldest ``_id`` first, in pages of ``batch``. Paging by
        ``_id`` (not re-reading the first ``batch``) means documents whose events stay pending (unroutable)
        can never starve the ones behind them."""
        query: dict[str, Any] = {f"{OUTBOX}.id": {"$exists": True}}
        last: Any = None
        while True:
            page_query = query if last is None else {**query, "_id": {"$gt": last}}
            docs = await coll.find(page_query, {OUTBOX: 1}).sort("_id", 1).limit(self.batch).to_list()
            for doc in docs:
                yield doc
            if len(docs) < self.batch:
                return
            last = docs[-1]["_id"]

    async def pending(self) -> int:
        total = 0
        for name in self.collections:
            async for doc in self.db[name].find({f"{OUTBOX}.id": {"$exists": True}}, {OUTBOX: 1}):
                total += len(doc.get(OUTBOX, []))
        return total

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox_pass_failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
