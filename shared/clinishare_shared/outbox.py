"""The transactional outbox without multi-document transactions.

A state change and the events announcing it are written in ONE single-document MongoDB write: the
events ride in an ``_outbox`` array on the very document that changes (``insert_one`` of a document that
carries them, or an ``update_one`` whose ``$push`` adds them). MongoDB makes a single-document write
atomic on every deployment, including a standalone server and the in-process engine.

Relays claim their work, so any number of replicas can run over one database. A claim is a lease
document in ``_outbox_claims`` whose ``_id`` names the claimed document (``charts/<id>``), created with
an INSERT: the unique ``_id`` makes exactly one relay the holder, on every engine. (A conditional update
is not enough: FerretDB 1.24 on SQLite evaluates an update's filter and writes the result without
isolation, so several relays racing "set the claim where it is free" would all win.) The holder re-reads
the document, publishes its events in order with publisher confirms, removes exactly those events
(``mongo.pull_exact``: ``$pullAll`` of the stored elements, equality, which FerretDB supports) and deletes its lease. A relay
that dies leaves its lease to expire; then exactly one other relay takes it over (it must first insert a
``<claim>/<lease token>`` marker into ``_outbox_takeovers``, again unique) and claims the document anew.
Relays never write a claim into the domain document, so they cannot overwrite a concurrent change to it.

Delivery is at least once: a crash between the confirm and the removal re-publishes that event once the
lease has expired, and a relay that stalled longer than its lease may meet a replica that took over.
A confirm lost because the broker closed the connection (it stayed up) is not such a case: the publish
is "in doubt", the relay keeps that document's lease marked with the event, and whoever publishes it
next first asks the events stream whether the broker routed it (``EventBus.routed_since``).
Consumers are idempotent by event id. Per-document order is kept: one relay publishes a document's events
at a time, oldest first, and stops at the first one that fails. If the broker is down, events stay in
their documents and go out when it is back.

A new document written where a relay runs can skip the relay's claim altogether (``insert_fresh``): the
writer inserts the lease for it first, in the relay's name, alongside whatever else precedes the insert,
and then hands the relay the events it just wrote. The relay publishes them from memory at its next turn
(no claim to insert, no document to re-read: nobody else can hold a document that did not exist before
its lease) and removes them as usual. Everything after the publish (removal, release, doubts, takeovers
of a relay that died) is the claimed path's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from pymongo.errors import BulkWriteError, DuplicateKeyError

from clinishare_shared.bus.base import EventBus, PublishFailed
from clinishare_shared.events import Envelope
from clinishare_shared.mongo import delete_by_ids, find_by_ids, insert_new, pull_exact, update_each
from clinishare_shared.observability import TRACE_KEY, carrier, unconfirmed
from clinishare_shared.lifecycle import cancel_and_wait

OUTBOX = "_outbox"
CLAIMS = "_outbox_claims"
# one document per lease that ran out and was taken over (``<claim>/<lease token>``): the unique insert
# that lets one relay only take it over. Kept apart from the leases, which stay few (FerretDB scans a
# collection for any filter but a bare _id, and every relay reads the leases on every pass).
TAKEOVERS = "_outbox_takeovers"
# on a lease: the event a lost confirm left in doubt ({"event": id, "sent": when})
DOUBT = "doubt"
# the projection every read of a document with an outbox uses
NO_OUTBOX = {OUTBOX: 0}
# what a store calls after a write that staged events: the collection and the document (``Infra.kick``)
Kick = Callable[[str | None, Any], None]


def no_kick(collection: str | None = None, doc_id: Any = None) -> None:
    """A store's kick when no relay runs beside it (scripts, tests): its staged events wait for a sweep."""
log = structlog.get_logger("clinishare.outbox")


def staged(*events: Envelope) -> list[dict[str, Any]]:
    """Events as stored in an outbox; each keeps the trace context of the request that staged it, so the
    relay's publish (later, in another task) continues that trace."""
    trace = carrier()
    return [{**e.model_dump(mode="json"), **({TRACE_KEY: trace} if trace else {})} for e in events]


def with_events(document: dict[str, Any], *events: Envelope) -> dict[str, Any]:
    """A document to insert that carries its events."""
    return {**document, OUTBOX: staged(*events)}


def push_events(update: dict[str, Any], *events: Envelope) -> dict[str, Any]:
    """An update document that also appends ``events`` to the outbox of the document it changes."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in update.items()}
    out.setdefault("$push", {})[OUTBOX] = {"$each": staged(*events)}
    return out


async def insert_once(coll: Any, document: dict[str, Any], *events: Envelope) -> bool:
    """Insert ``document`` (whose ``_id`` names a fact, e.g. "grant G expired") with its events, unless a
    document with that ``_id`` exists: exactly one of any number of racing writers wins, on every engine
    (a unique insert, not a conditional update: see above), and only the winner's events are staged."""
    return await insert_new(coll, with_events(document, *events))


@dataclass(frozen=True)
class FreshClaim:
    """A relay's lease on a document not written yet (``OutboxRelay.claim_fresh``)."""
    collection: str
    doc_id: Any
    token: str
    until: datetime


class FreshClaims(Protocol):
    """What ``insert_fresh`` needs of the relay running beside a store (``runtime.Infra`` hands it on)."""

    async def claim_fresh(self, collection: str, doc_id: Any) -> FreshClaim | None: ...

    def kick_claimed(self, claim: FreshClaim, events: list[dict[str, Any]]) -> None: ...

    async def release_fresh(self, claim: FreshClaim) -> None: ...


async def insert_fresh(coll: Any, document: dict[str, Any], *events: Envelope, kick: Kick,
                       claims: FreshClaims | None, before: Sequence[Awaitable[Any]] = ()) -> None:
    """Insert a NEW document with its events, after the writes in ``before`` (run together). Where a relay
    runs beside the store (``claims``), its lease on the document is taken together with ``before``, and
    once the document is written the relay is handed its events to publish from memory: they leave at its
    next turn, without the claim and the read a kicked document costs. Without a relay, or when the lease
    cannot be had, it is an insert and a kick. A failed insert gives the lease back."""
    doc = with_events(document, *events)
    claim, *_ = await asyncio.gather(claims.claim_fresh(coll.name, doc["_id"]) if claims else _no_claim(), *before)
    try:
        await coll.insert_one(doc)
    except BaseException:
        if claims and claim is not None:
            with contextlib.suppress(Exception):  # it runs out by itself otherwise, naming no document
                await claims.release_fresh(claim)
        raise
    if claims and claim is not None:
        claims.kick_claimed(claim, doc[OUTBOX])
    else:
        kick(coll.name, doc["_id"])


async def _no_claim() -> None:
    return None


def strip_outbox(document: dict[str, Any] | None) -> dict[str, Any] | None:
    if document is not None:
        document.pop(OUTBOX, None)
    return document


OUTBOX_INDEX = [(f"{OUTBOX}.id", 1)]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def relay_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class OutboxRelay:
    def __init__(self, db: Any, collections: Sequence[str], bus: EventBus, *, poll_interval: float = 0.25,
                 batch: int = 100, lease_seconds: float = 30.0, name: str | None = None,
                 sweep_interval: float = 30.0) -> None:
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
        self.doubts_asked = 0  # events in doubt (confirm lost) the broker was asked about
        self.doubts_routed = 0  # ... of which it had routed (so not published again)
        self.unverifiable = 0  # events sent again although the broker may have routed them (may repeat)
        # event id -> (retry at, current delay): an unroutable event is retried with back-off, so a
        # missing consumer costs one log line per back-off period instead of one per pass
        self._parked: dict[str, tuple[float, float]] = {}
        self.max_park_seconds = 60.0
        self._until = datetime.now(UTC)
        self._swept_at = 0.0
        # What writes staged since the last pass: collection -> document ids. The pass after a write
        # reads only these (by _id: an index on every engine); the full sweep (every collection, every
        # pending document) runs at start-up, on a kick that names nothing, and every sweep_interval.
        self.sweep_interval = sweep_interval
        self._staged: dict[str, set[Any]] = {}
        # New documents whose lease the writer took for this relay (claim_fresh), with their events:
        # lease token -> (until, collection -> document id -> events). A token serves every fresh claim
        # for a quarter of a lease, so a burst of writes goes out in one pipelined publish per token.
        self._fresh: dict[str, tuple[datetime, dict[str, dict[Any, list[dict[str, Any]]]]]] = {}
        self._fresh_token: tuple[str, datetime, datetime] | None = None  # token, until, used until
        self._sweep_due = True
        self._last_sweep = float("-inf")
        # (collection, document id) -> loop time to look at it again (its first event is parked)
        self._retry_docs: dict[tuple[str, Any], float] = {}
        # (collection, document id) -> the doubt its lease carried when this relay took it: the first
        # pending event's id and when it was sent (see _resolve_doubts)
        self._doubts: dict[tuple[str, Any], dict[str, Any]] = {}

    async def ensure_indexes(self) -> None:
        for name in self.collections:
            await self.db[name].create_index(OUTBOX_INDEX, sparse=True, name="outbox_pending")
        await self.db[TAKEOVERS].create_index("at", name="takeover_age")

    def retry_parked(self) -> None:
        """Forget the back-off of unroutable events (say, once their consumer is deployed): their documents
        are due at the next pass."""
        self._parked.clear()
        self._retry_docs = {key: 0.0 for key in self._retry_docs}

    def kick(self, collection: str | None = None, doc_id: Any = None) -> None:
        """Ask for a pass now, after a write that staged events in ``collection``'s document ``doc_id``:
        that pass reads only the documents named since the last one. A kick that names nothing asks for
        a full sweep."""
        if collection is None or doc_id is None:
            self._sweep_due = True
        else:
            self._staged.setdefault(collection, set()).add(doc_id)
        self._wake.set()

    # ---- new documents: the writer takes the lease (insert_fresh) --------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _token_for_fresh(self) -> tuple[str, datetime]:
        now = datetime.now(UTC)
        if self._fresh_token is None or now >= self._fresh_token[2]:
            until = now + timedelta(seconds=self.lease_seconds)
            self._fresh_token = (f"{self.name}:{uuid.uuid4().hex[:8]}", until,
                                 now + timedelta(seconds=self.lease_seconds / 4))
        return self._fresh_token[0], self._fresh_token[1]

    async def claim_fresh(self, collection: str, doc_id: Any) -> FreshClaim | None:
        """This relay's lease on document ``doc_id`` of ``collection``, before it is written (by the
        ordinary unique insert of a lease). None if this relay does not run (held) or the lease exists."""
        if not self.running:
            return None
        token, until = self._token_for_fresh()
        if not await insert_new(self.db[CLAIMS], {"_id": f"{collection}/{doc_id}", "by": token, "until": until}):
            return None
        return FreshClaim(collection, doc_id, token, until)

    def kick_claimed(self, claim: FreshClaim, events: list[dict[str, Any]]) -> None:
        """The document of ``claim`` is written with ``events`` (as stored): publish them at the next turn."""
        self._fresh.setdefault(claim.token, (claim.until, {}))[1].setdefault(claim.collection, {})[claim.doc_id] = events
        self._wake.set()

    async def release_fresh(self, claim: FreshClaim) -> None:
        await self.db[CLAIMS].delete_one({"_id": f"{claim.collection}/{claim.doc_id}", "by": claim.token})

    async def publish_fresh(self) -> int:
        """Publish what ``kick_claimed`` handed over: the relay holds those documents already (their lease
        was inserted before they were), so there is nothing to claim and nothing to re-read. Publishing,
        removal and release are the claimed path's (``_publish_held``); what the broker did not take is
        staged for the next pass, which claims it as any document. Returns how many were published."""
        fresh, self._fresh = self._fresh, {}
        sent = 0
        for token, (until, colls) in fresh.items():
            for name, docs in colls.items():
                self._until = until
                if (until - datetime.now(UTC)).total_seconds() <= self.lease_seconds / 2:
                    # too little of the lease is left to publish on (the claimed path's rule): given back
                    # while it is ours, and left to a pass that claims them anew
                    await self._release(self.db[name], list(docs), token)
                    self._staged.setdefault(name, set()).update(docs)
                    continue
                held = [{"_id": doc_id, OUTBOX: events} for doc_id, events in docs.items()]
                n, broker_down = await self._publish_held(self.db[name], held, token)
                sent += n
                if broker_down:  # given back (or kept in doubt): the claimed path takes them from here
                    self._staged.setdefault(name, set()).update(docs)
        return sent

    def _is_parked(self, doc: dict[str, Any], now: float) -> bool:
        events = doc.get(OUTBOX) or []
        return bool(events) and now < self._parked.get(events[0].get("id", ""), (0.0, 0.0))[0]

    async def _take(self, key: str, token: str, now: datetime, current: dict[str, Any] | None) -> bool:
        """Try to become the holder of ``key``: insert the lease, or, when the lease there has expired, take
        it over (one relay only: the one whose ``takeover`` marker insert succeeds) and insert anew."""
        claims = self.db[CLAIMS]
        lease: dict[str, Any] = {"_id": key, "by": token, "until": now + timedelta(seconds=self.lease_seconds)}
        if current is not None:
            if current.get(DOUBT):
                lease[DOUBT] = current[DOUBT]  # whoever holds it next must ask the broker first
            if current.get(DOUBT) and str(current["by"]).startswith(f"{self.name}:"):
                # our own lease, kept after a lost confirm: take it back at once (the unique insert
                # below still lets one pass win if several race)
                await claims.delete_one({"_id": key, "by": current["by"]})
            elif _aware(current["until"]) > now:
                return False
            else:
                try:
                    await self.db[TAKEOVERS].insert_one({"_id": f"{key}/{current['by']}", "at": now})
                except DuplicateKeyError:
                    return False  # another relay is taking this one over
                log.warning("outbox_lease_taken_over", claim=key, relay=self.name)
                await claims.delete_one({"_id": key})
        try:
            await claims.insert_one(lease)
        except DuplicateKeyError:
            return False
        return True

    async def claim(self, coll: Any, after: Any = None) -> tuple[list[dict[str, Any]], Any, str | None]:
        """Claim up to ``batch`` documents of ``coll`` with pending events (``_id`` after ``after``), oldest
        first. Returns the documents this relay now holds, re-read after claiming (so an event another relay
        published meanwhile is not published again), the last ``_id`` looked at (for the next page; None
        when there is none) and the lease token. Paging by ``_id`` means documents whose events stay
        pending (unroutable) never starve the ones behind them."""
        query: dict[str, Any] = {f"{OUTBOX}.id": {"$exists": True}}
        if after is not None:
            query["_id"] = {"$gt": after}
        candidates = await coll.find(query, {"_id": 1, OUTBOX: 1}).sort("_id", 1).limit(self.batch).to_list()
        last = candidates[-1]["_id"] if len(candidates) == self.batch else None
        held, token = await self._claim_candidates(coll, candidates)
        return held, last, token

    async def _claim_candidates(self, coll: Any, candidates: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
        """Take the leases of ``candidates`` (documents with pending events) that are free and not parked;
        the documents now held, re-read, and the lease token."""
        loop_now = asyncio.get_running_loop().time()
        return await self._claim_ids(coll, [d["_id"] for d in candidates if not self._is_parked(d, loop_now)])

    async def _claim_ids(self, coll: Any, ids: list[Any]) -> tuple[list[dict[str, Any]], str | None]:
        """Take the leases of the documents ``ids`` names: one insert of them all first (the usual case,
        nobody holds them, costs that one round trip); only those already held are read, and taken over
        if their lease ran out (``_take``). The documents held are re-read (what another relay published
        meanwhile is not published again); those with nothing pending now, or gone, are given back at once.
        Returns the documents held and the lease token."""
        keys = {f"{coll.name}/{i}": i for i in ids}
        if not keys:
            return [], None
        token = f"{self.name}:{uuid.uuid4().hex[:8]}"
        taken_at = datetime.now(UTC)
        until = taken_at + timedelta(seconds=self.lease_seconds)
        held_ids = await self._insert_leases(list(keys), keys, token, until)
        taken = set(held_ids)
        lost = [k for k, i in keys.items() if i not in taken]
        if lost:
            leases = {c["_id"]: c for c in await find_by_ids(self.db[CLAIMS], lost)}
            for key in lost:  # held by someone (or given back since our insert): taken over only if expired
                current = leases.get(key)
                if await self._take(key, token, taken_at, current):
                    held_ids.append(keys[key])
                    if current is not None and current.get(DOUBT):
                        self._doubts[(coll.name, keys[key])] = current[DOUBT]
        if not held_ids:
            return [], None
        self._until = until
        held = [d for d in await find_by_ids(coll, sorted(held_ids), {OUTBOX: 1}) if d.get(OUTBOX)]
        idle = sorted(set(held_ids) - {d["_id"] for d in held})
        if idle:
            await self._release(coll, idle, token)
            for doc_id in idle:
                self._doubts.pop((coll.name, doc_id), None)
        return held, token if held else None

    async def _finish(self, coll: Any, done: list[tuple[Any, list[dict[str, Any]]]]) -> None:
        """Remove each document's confirmed events (the exact stored elements) in bulk writes."""
        await update_each(coll, [(doc_id, pull_exact(OUTBOX, *events_out)) for doc_id, events_out in done])

    async def _insert_leases(self, free: list[str], keys: dict[str, Any], token: str, until: datetime) -> list[Any]:
        """Insert leases for the unclaimed documents in one round trip; the ones another relay inserted
        first (duplicate ``_id``) are not ours."""
        if not free:
            return []
        lost: set[int] = set()
        try:
            await self.db[CLAIMS].insert_many([{"_id": k, "by": token, "until": until} for k in free], ordered=False)
        except BulkWriteError as exc:
            lost = {e["index"] for e in exc.details.get("writeErrors", []) if e.get("code") == 11000}
            if len(lost) != len(exc.details.get("writeErrors", [])):
                raise
        return [keys[k] for i, k in enumerate(free) if i not in lost]

    async def _release(self, coll: Any, ids: list[Any], token: str) -> None:
        """Give leases back, unless they ran out (then another relay may hold them now: not ours to drop).
        While more than half of the lease is left, nobody else can hold them (a takeover waits for the
        lease to run out, and a clock ahead of ours by less than half a lease cannot see it run out yet:
        the rule publishing keeps too), and this relay gives each back once, so they are deleted by bare
        ``_id``, which FerretDB serves from its index (with ``by`` in the filter it scans the leases);
        later, only those still carrying this relay's token."""
        left = (self._until - datetime.now(UTC)).total_seconds()
        if not ids or left <= 0:
            return
        keys = [f"{coll.name}/{i}" for i in ids]
        if left > self.lease_seconds / 2:
            await delete_by_ids(self.db[CLAIMS], keys)
        else:
            await self.db[CLAIMS].delete_many({"_id": {"$in": keys}, "by": token})

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
                        self._sweep_due = True  # the broker is away: sweep again at the next poll
                        return sent
                if after is None:
                    break
        await self._forget_old_takeovers()
        return sent

    async def pass_after_write(self) -> int:
        """The pass a write's kick triggers: only the documents named by kicks since the last pass (and
        those whose parked event is due again), claimed and read by ``_id``, so its cost does not grow with
        the collection. Returns how many events were published."""
        now = asyncio.get_running_loop().time()
        for (name, doc_id), at in list(self._retry_docs.items()):
            if at <= now:
                del self._retry_docs[(name, doc_id)]
                self._staged.setdefault(name, set()).add(doc_id)
        staged, self._staged = self._staged, {}
        sent = 0
        for name, ids in staged.items():
            coll = self.db[name]
            ordered = sorted(ids)
            for i in range(0, len(ordered), self.batch):
                # a kick names a document its write staged events on: claimed without reading it first
                # (the claim re-reads what it holds); one parked by this relay waits for its retry time
                chunk = [d for d in ordered[i:i + self.batch] if (name, d) not in self._retry_docs]
                docs, token = await self._claim_ids(coll, chunk)
                if token is None:
                    continue
                n, broker_down = await self._publish_held(coll, docs, token)
                sent += n
                if broker_down:  # keep what is left for the next pass
                    for rest_name, rest in staged.items():
                        self._staged.setdefault(rest_name, set()).update(rest)
                    return sent
        return sent

    async def _forget_old_takeovers(self) -> None:
        """Takeover markers only need to outlive the leases they ended; drop those older than an hour."""
        now = asyncio.get_running_loop().time()
        if now - self._swept_at < 600:
            return
        self._swept_at = now
        cutoff = datetime.now(UTC) - timedelta(hours=1)
        await self.db[TAKEOVERS].delete_many({"at": {"$lt": cutoff}})

    async def _publish_held(self, coll: Any, docs: list[dict[str, Any]], token: str) -> tuple[int, bool]:
        """Publish the events of the documents this relay holds, pipelined: in round k the k-th pending
        event of every document still going is in flight at once (``bus.publish_many``), so a document's
        events leave in order, one round after another, and a document stops at its first failure (the
        rest wait behind it). Then ONE removal per document of exactly its confirmed events, and the
        leases back in one write. Returns the number published and whether the broker was unavailable
        (the pass stops)."""
        loop = asyncio.get_running_loop()
        pending = {d["_id"]: list(d.get(OUTBOX) or []) for d in docs}
        published: dict[Any, list[dict[str, Any]]] = {d["_id"]: [] for d in docs}
        doubts = {d["_id"]: self._doubts.pop((coll.name, d["_id"])) for d in docs if (coll.name, d["_id"]) in self._doubts}
        in_doubt: dict[Any, dict[str, Any]] = {}  # documents whose first event is in doubt after this pass
        broker_down = False
        if doubts:
            try:
                await self._resolve_doubts(pending, published, doubts)
            except PublishFailed as exc:  # cannot ask now: publish none of them, keep their doubts
                log.warning("outbox_broker_unavailable", reason=str(exc))
                in_doubt, broker_down = doubts, True
        going = [d["_id"] for d in docs if pending[d["_id"]] and d["_id"] not in in_doubt]
        k = 0
        while going and not broker_down:
            # never publish on a lease that may run out under us: what is not started by the time half
            # of it is left goes back (and is looked at again next pass)
            deadline = loop.time() + (self._until - datetime.now(UTC)).total_seconds() - self.lease_seconds / 2
            raws = [pending[doc_id][k] for doc_id in going]
            events = [Envelope.model_validate(raw) for raw in raws]
            sent_at = datetime.now(UTC)
            results = await self.bus.publish_many(events, deadline=deadline,
                                                  traces=[raw.get(TRACE_KEY) for raw in raws])
            now = loop.time()
            still = []
            for doc_id in going[len(results):]:  # not attempted in time
                self._staged.setdefault(coll.name, set()).add(doc_id)
            for doc_id, raw, event, failure in zip(going, raws, events, results):
                if failure is None:
                    published[doc_id].append(raw)
                    self._parked.pop(event.id, None)
                    if k + 1 < len(pending[doc_id]):
                        still.append(doc_id)
                elif failure.unroutable:
                    # Nobody is bound for it yet: keep it (and the rest of this document's events, to
                    # keep their order) for a later pass; other documents still go.
                    delay = min(self.max_park_seconds, max(1.0, self._parked.get(event.id, (0.0, 0.0))[1] * 2))
                    self._parked[event.id] = (now + delay, delay)
                    self._retry_docs[(coll.name, doc_id)] = now + delay
                    log.error("outbox_event_unroutable", event_id=event.id, event_type=event.type,
                              collection=coll.name, retry_in_seconds=delay)
                else:
                    log.warning("outbox_broker_unavailable", event_id=event.id, reason=str(failure),
                                in_doubt=failure.in_doubt)
                    broker_down = True
                    if failure.in_doubt:  # it may have gone out: whoever publishes it next asks first
                        in_doubt[doc_id] = {"event": event.id, "sent": sent_at}
                    elif failure.sent:  # it may have gone out, and no one can tell: it goes out again
                        unconfirmed(event.source, "unverifiable")
                        self.unverifiable += 1
            confirmed = [e.id for e, r in zip(events, results) if r is None]
            if confirmed:
                log.info("outbox_events_published", count=len(confirmed), collection=coll.name, round=k)
            going = still if len(results) == len(raws) else [d for d in still if d in going[:len(results)]]
            k += 1
        # the removals in bulk writes (each statement by bare _id): under load a removal per document
        # could outlast the lease, and a replica taking over would publish the events again
        done = [(doc_id, events_out) for doc_id, events_out in published.items() if events_out]
        if done and datetime.now(UTC) >= self._until:  # another replica may have taken them over meanwhile
            log.warning("outbox_lease_lapsed_during_pass", collection=coll.name, documents=len(done),
                        lease_seconds=self.lease_seconds, hint="a longer lease or a smaller batch")
        await self._finish(coll, done)
        sent = sum(len(events_out) for _, events_out in done)
        self.published += sent
        await self._release(coll, [d["_id"] for d in docs if d["_id"] not in in_doubt], token)
        for doc_id, doubt in in_doubt.items():  # kept, saying what is in doubt, until someone asks the broker
            await self.db[CLAIMS].update_one({"_id": f"{coll.name}/{doc_id}", "by": token}, {"$set": {DOUBT: doubt}})
        return sent, broker_down

    async def _resolve_doubts(self, pending: dict[Any, list[dict[str, Any]]],
                              published: dict[Any, list[dict[str, Any]]], doubts: dict[Any, dict[str, Any]]) -> None:
        """Documents whose first pending event was sent to a broker that closed the connection before
        confirming it: ask the broker which of those it routed (``bus.routed_since``). Those count as
        published (removed with the rest, not sent again); the others are published as usual. Raises
        PublishFailed when the broker cannot be asked now."""
        ids = {doc_id: d["event"] for doc_id, d in doubts.items() if pending[doc_id] and pending[doc_id][0].get("id") == d["event"]}
        if not ids:
            return
        since = min(_aware(doubts[doc_id]["sent"]) for doc_id in ids)
        routed = await self.bus.routed_since(set(ids.values()), since)
        self.doubts_asked += len(ids)
        for doc_id, event_id in ids.items():
            source = str(pending[doc_id][0].get("source", ""))
            if routed is None:
                unconfirmed(source, "unverifiable")
                self.unverifiable += 1
            elif event_id in routed:
                published[doc_id].append(pending[doc_id].pop(0))
                unconfirmed(source, "routed")
                self.doubts_routed += 1
            else:
                unconfirmed(source, "not_routed")
        log.info("outbox_doubts_resolved", in_doubt=len(ids), already_routed=len(routed or ()),
                 asked=routed is not None)

    async def backlog(self) -> tuple[int, float]:
        """Events pending in every collection, and the age in seconds of the oldest (0 when none)."""
        count, oldest = 0, None
        for name in self.collections:
            async for doc in self.db[name].find({f"{OUTBOX}.id": {"$exists": True}}, {f"{OUTBOX}.time": 1}):
                for raw in doc.get(OUTBOX, []):
                    count += 1
                    stamp = raw.get("time")
                    when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
                    if isinstance(when, datetime) and (oldest is None or when < oldest):
                        oldest = when
        if oldest is None:
            return count, 0.0
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return count, max(0.0, (datetime.now(UTC) - oldest).total_seconds())

    async def pending(self) -> int:
        total = 0
        for name in self.collections:
            async for doc in self.db[name].find({f"{OUTBOX}.id": {"$exists": True}}, {OUTBOX: 1}):
                total += len(doc.get(OUTBOX, []))
        return total

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self._fresh:
                    await self.publish_fresh()
                if self._sweep_due or loop.time() - self._last_sweep >= self.sweep_interval:
                    self._sweep_due = False
                    self._last_sweep = loop.time()
                    self._staged.clear()  # the sweep covers everything staged so far
                    await self.run_once()
                elif self._staged or self._retry_docs:
                    await self.pass_after_write()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox_pass_failed")
            try:
                # asyncio.timeout, not wait_for: wait_for ran the wait as a task of its own, so a write's
                # wake reached this loop a few event-loop turns later, each turn a slice of the request
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        # new documents handed over but not started on: their leases go back (while still ours), so the
        # next relay's sweep publishes them at once instead of after the lease (one being published when
        # the loop was cancelled keeps its lease, as a claimed one does)
        fresh, self._fresh = self._fresh, {}
        for token, (until, colls) in fresh.items():
            self._until = until
            for name, docs in colls.items():
                with contextlib.suppress(Exception):  # the database is away: the leases run out by themselves
                    await self._release(self.db[name], list(docs), token)
