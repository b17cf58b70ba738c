"""The relay's fast paths: the pass after a write reads only what that write staged (never the
collection), a full sweep still finds everything, and publishing is pipelined (many events in flight)
while each document's events keep their order, a document stopping at its first failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from clinishare_shared.bus.base import EventBus, Handler, PublishFailed
from clinishare_shared.events import ChartNoteAdded, Envelope, make_event
from clinishare_shared.outbox import OUTBOX, OutboxRelay, push_events, with_events


def _note(i: int, chart: str) -> Envelope:
    return make_event(ChartNoteAdded(note_id=f"n{i}", chart_id=chart, chart_author_id="a", author_id="b"),
                      source="charts", subject=chart)


class PipelineBus(EventBus):
    """Records each publish_many call (the batches in flight) and can refuse chosen events."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []
        self.batches: list[list[str]] = []
        self.unroutable: set[str] = set()
        self.down = False

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        return True

    async def subscribe(self, queue: str, routing_keys: Sequence[str], handler: Handler) -> None: ...

    async def publish(self, event: Envelope) -> None:
        raise AssertionError("the relay publishes in batches")

    async def publish_many(self, events: Sequence[Envelope], *, deadline: float | None = None,
                           traces: Any = None) -> list[PublishFailed | None]:
        await asyncio.sleep(0)
        self.batches.append([e.id for e in events])
        out: list[PublishFailed | None] = []
        for e in events:
            if self.down:
                out.append(PublishFailed("broker unavailable"))
            elif e.id in self.unroutable:
                out.append(PublishFailed("unroutable", unroutable=True))
            else:
                self.sent.append(e)
                out.append(None)
        return out


class CountingCollection:
    """Wraps a collection and records the filters of every find (to prove what a pass reads)."""

    def __init__(self, inner: Any, finds: list[dict[str, Any]]) -> None:
        self._inner, self._finds = inner, finds
        self.name = inner.name

    def find(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._finds.append(query)
        return self._inner.find(query, *args, **kwargs)

    async def find_one(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._finds.append(query)
        return await self._inner.find_one(query, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CountingDb:
    def __init__(self, db: Any) -> None:
        self._db = db
        self.finds: list[dict[str, Any]] = []

    def __getitem__(self, name: str) -> Any:
        coll = self._db[name]
        return CountingCollection(coll, self.finds) if name == "charts" else coll


async def _stage(db: Any, chart: str, n: int) -> list[Envelope]:
    evs = [_note(i, chart) for i in range(n)]
    await db.charts.insert_one(with_events({"_id": chart}, evs[0]))
    for ev in evs[1:]:
        await db.charts.update_one({"_id": chart}, push_events({"$set": {"n": ev.data["note_id"]}}, ev))
    return evs


async def test_pass_after_write_reads_only_the_staged_document(db: Any) -> None:
    bus = PipelineBus()
    counting = CountingDb(db)
    relay = OutboxRelay(counting, ["charts"], bus)
    # a collection full of documents, some with events nobody staged through this relay
    await db.charts.insert_many([{"_id": f"old{i:04d}"} for i in range(200)])
    other = await _stage(db, "other", 1)
    mine = await _stage(db, "mine", 2)
    relay.kick("charts", "mine")
    assert await relay.pass_after_write() == 2
    assert [e.id for e in bus.sent] == [e.id for e in mine]
    scans = [q for q in counting.finds if "_id" not in q]
    assert scans == [], scans  # every read named its documents by _id
    # and by a bare _id equality (the only condition FerretDB's SQLite handler pushes down)
    assert {"_id": "mine"} in counting.finds and all(isinstance(q["_id"], str) or set(q) == {"_id"}
                                                      for q in counting.finds)
    assert await relay.pass_after_write() == 0  # nothing staged since: nothing read
    # the full sweep still finds what no kick named
    assert await relay.run_once() == 1 and bus.sent[-1].id == other[0].id
    assert await relay.pending() == 0


async def test_kick_without_a_document_asks_for_a_sweep(db: Any) -> None:
    relay = OutboxRelay(db, ["charts"], PipelineBus())
    relay._sweep_due = False
    relay.kick()
    assert relay._sweep_due and relay._staged == {}
    relay.kick("charts", "x")
    assert relay._staged == {"charts": {"x"}}


async def test_batches_keep_each_documents_order(db: Any) -> None:
    bus = PipelineBus()
    relay = OutboxRelay(db, ["charts"], bus)
    staged = {f"ch{d}": await _stage(db, f"ch{d}", d + 1) for d in range(4)}  # 1, 2, 3 and 4 events
    assert await relay.run_once() == 10
    # round k has the k-th event of every document that still has one: 4, 3, 2, 1 in flight
    assert [len(b) for b in bus.batches] == [4, 3, 2, 1]
    for batch in bus.batches:
        subjects = [next(e.subject for e in bus.sent if e.id == i) for i in batch]
        assert len(set(subjects)) == len(subjects)  # never two events of one document in flight
    for chart, evs in staged.items():
        assert [e.id for e in bus.sent if e.subject == chart] == [e.id for e in evs]
    assert await relay.pending() == 0


async def test_a_document_stops_at_its_first_failure_others_go_on(db: Any) -> None:
    bus = PipelineBus()
    relay = OutboxRelay(db, ["charts"], bus)
    a = await _stage(db, "a", 3)
    b = await _stage(db, "b", 3)
    bus.unroutable = {a[1].id}
    assert await relay.run_once() == 4  # a's first, all of b's
    assert [e.id for e in bus.sent if e.subject == "a"] == [a[0].id]
    assert [e.id for e in bus.sent if e.subject == "b"] == [e.id for e in b]
    doc = await db.charts.find_one({"_id": "a"})
    assert [e["id"] for e in doc[OUTBOX]] == [a[1].id, a[2].id]  # kept, in order, behind the failure
    # once routable (parking forgotten), the rest of a goes, in order
    bus.unroutable = set()
    relay.retry_parked()
    assert await relay.run_once() == 2
    assert [e.id for e in bus.sent if e.subject == "a"] == [e.id for e in a]


async def test_broker_down_keeps_everything_and_the_staged_ids(db: Any) -> None:
    bus = PipelineBus()
    relay = OutboxRelay(db, ["charts"], bus)
    evs = await _stage(db, "c", 2)
    bus.down = True
    relay.kick("charts", "c")
    assert await relay.pass_after_write() == 0
    assert relay._staged == {"charts": {"c"}}  # looked at again next pass
    assert len((await db.charts.find_one({"_id": "c"}))[OUTBOX]) == 2
    bus.down = False
    assert await relay.pass_after_write() == 2
    assert [e.id for e in bus.sent] == [e.id for e in evs]


async def test_broker_down_during_a_sweep_asks_for_another(db: Any) -> None:
    bus = PipelineBus()
    relay = OutboxRelay(db, ["charts"], bus)
    await _stage(db, "d", 1)
    relay._sweep_due = False
    bus.down = True
    assert await relay.run_once() == 0
    assert relay._sweep_due  # retried at the next poll, not at the slow timer
    bus.down = False
    assert await relay.run_once() == 1
