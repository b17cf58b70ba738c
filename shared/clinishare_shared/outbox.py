"""The transactional outbox without multi-document transactions.

A state change and the events announcing it are written in ONE single-document MongoDB write: the
events ride in an ``_outbox`` array on the very document that changes (``insert_one`` of a document that
carries them, or an ``update_one`` whose ``$push`` adds them). MongoDB makes a single-document write
atomic on every deployment, including a standalone server and the in-process engine.

Relays claim their work, so any number of replicas can run over one database. A relay takes a page of
documents with pending events by setting a lease on them (``_outbox_claim: {by, until}``) with one
conditional update that matches only unclaimed documents or documents whose lease ran out: each document
is claimed by one relay at a time, atomically. The claimer publishes the document's events in order with
publisher confirms, then removes exactly those events (``$pullAll`` of the stored elements: equality,
which every engine supports, FerretDB included) and drops its lease in the same single-document write.
A relay that dies leaves its leases to expire and another replica takes the documents over.

Delivery is at least once: a crash between the confirm and the removal re-publishes that event once the
lease has expired, and a relay that stalled longer than its lease may meet a replica that took over.
Consumers are idempotent by event id. Per-document order is kept: one relay publishes a document's events
at a time, oldest first, and stops at the first one that fails. If the broker is down, events stay in
their documents and go out when it is back.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from clinishare_shared.bus.base import EventBus, PublishFailed
from clinishare_shared.events import Envelope

OUTBOX = "_outbox"
CLAIM = "_outbox_claim"
# the projection every read of a document with an outbox uses: neither the events nor the relay's lease
NO_OUTBOX = {OUTBOX: 0, CLAIM: 0}
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
        document.pop(CLAIM, None)
    return document


OUTBOX_INDEX = [(f"{OUTBOX}.id", 1)]


def _claimable(now: datetime) -> dict[str, Any]:
    """Documents with pending events that nobody holds: never claimed, released, or whose lease ran out."""
    return {f"{OUTBOX}.id": {"$exists": True},
            "$or": [{CLAIM: {"$exists": False}}, {CLAIM: None}, {f"{CLAIM}.until": {"$lte": now}}]}


def relay_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class OutboxRelay:
    def __init__(self, db: Any, collections: Sequence[str], bus: EventBus, *, poll_interval: float = 0.25,
                 batch: int = 100, lease_seconds: float = 30.0, name: str | None = None) -> None:
        self.db = db
        self.collections = list(collections)
        self.bus = bus
        self.poll_interval = poll_interval
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.name = name or relay_name()
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

    def _is_parked(self, doc: dict[str, Any], now: float) -> bool:
        events = doc.get(OUTBOX) or []
        return bool(events) and now < self._parked.get(events[0].get("id", ""), (0.0, 0.0))[0]

    async def claim(self, coll: Any, after: Any = None) -> tuple[list[dict[str, Any]], Any, str | None]:
        """Claim up to ``batch`` claimable documents of ``coll`` (``_id`` after ``after``), oldest first.

        Returns the documents this relay now holds, the last ``_id`` looked at (for the next page, None
        when there is none) and the lease token. Paging by ``_id`` means documents whose events stay
        pending (unroutable) never starve the ones behind them."""
        now = datetime.now(UTC)
        query = _claimable(now)
        if after is not None:
            query["_id"] = {"$gt": after}
        candidates = await coll.find(query, {"_id": 1, OUTBOX: 1}) \
            .sort("_id", 1).limit(self.batch).to_list()
        last = candidates[-1]["_id"] if len(candidates) == self.batch else None
        loop_now = asyncio.get_running_loop().time()
        ids = [d["_id"] for d in candidates if not self._is_parked(d, loop_now)]
        if not ids:
            return [], last, None
        token = f"{self.name}:{uuid.uuid4().hex[:8]}"
        # the conditional update is the claim: a document another relay took since the find no longer
        # matches _claimable, so it is not overwritten; each document is updated atomically on its own
        await coll.update_many({**_claimable(now), "_id": {"$in": ids}},
                               {"$set": {CLAIM: {"by": token, "until": now + timedelta(seconds=self.lease_seconds)}}})
        held = await coll.find({"_id": {"$in": ids}, f"{CLAIM}.by": token}, {OUTBOX: 1}).sort("_id", 1).to_list()
        return held, last, token

    async def _finish(self, coll: Any, doc_id: Any, token: str, published: list[dict[str, Any]]) -> None:
        """Remove the published events (the exact stored elements) and give the lease back, in one write."""
        update: dict[str, Any] = {"$unset": {CLAIM: ""}}
        if published:
            update["$pullAll"] = {OUTBOX: published}
        res = await coll.update_one({"_id": doc_id, f"{CLAIM}.by": token}, update)
        if res.matched_count == 0 and published:
            # our lease ran out and another relay took the document over: still remove what we sent
            log.warning("outbox_lease_lost", collection=coll.name, relay=self.name)
            await coll.update_one({"_id": doc_id}, {"$pullAll": {OUTBOX: published}})

    async def _release(self, coll: Any, ids: list[Any], token: str) -> None:
        if ids:
            await coll.update_many({"_id": {"$in": ids}, f"{CLAIM}.by": token}, {"$unset": {CLAIM: ""}})

    async def run_once(self) -> int:
        """One pass over every claimable document. Returns how many events were published."""
        sent = 0
        for name in self.collections:
            coll = self.db[name]
            after: Any = None
            while True:
                docs, after, token = await self.claim(coll, after)
                if token is not None:
                    n, broker_down = await self._publish_held(coll, docs, token)
                    sent += n
                    if broker_down:
                        return sent
                if after is None:
                    break
        return sent

    async def _publish_held(self, coll: Any, docs: list[dict[str, Any]], token: str) -> tuple[int, bool]:
        """Publish the events of the documents this relay holds, document by document, in order. Returns
        the number published and whether the broker was unavailable (the pass stops)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0
        for i, doc in enumerate(docs):
            if loop.time() - started > self.lease_seconds / 2:
                # never publish on a lease that may run out under us: give the rest back
                await self._release(coll, [d["_id"] for d in docs[i:]], token)
                return sent, False
            published: list[dict[str, Any]] = []
            broker_down = False
            for raw in doc.get(OUTBOX, []):
                event = Envelope.model_validate(raw)
                now = loop.time()
                try:
                    await self.bus.publish(event)
                except PublishFailed as exc:
                    if exc.unroutable:
                        # Nobody is bound for it yet: keep it (and the rest of this document's events, to
                        # keep their order) for a later pass; other documents may still go.
                        delay = min(self.max_park_seconds, max(1.0, self._parked.get(event.id, (0.0, 0.0))[1] * 2))
                        self._parked[event.id] = (now + delay, delay)
                        log.error("outbox_event_unroutable", event_id=event.id, event_type=event.type,
                                  collection=coll.name, retry_in_seconds=delay)
                    else:
                        log.warning("outbox_broker_unavailable", event_id=event.id, reason=str(exc))
                        broker_down = True
                    break
                published.append(raw)
                self._parked.pop(event.id, None)
                log.info("outbox_event_published", event_id=event.id, event_type=event.type)
            await self._finish(coll, doc["_id"], token, published)
            sent += len(published)
            self.published += len(published)
            if broker_down:
                await self._release(coll, [d["_id"] for d in docs[i + 1:]], token)
                return sent, True
        return sent, False

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
