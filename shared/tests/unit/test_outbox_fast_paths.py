"""The relay's fast paths: the pass after a write reads only what that write staged (never the
collection), a full sweep still finds everything, and publishing is pipelined (many events in flight)
while each document's events keep their order, a document stopping at its first failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from clinishare_shared.events import ChartNoteAdded, Envelope, make_event
from clinishare_shared.mongo import scans_id_sets
from clinishare_shared.outbox import OUTBOX, OutboxRelay, push_events, with_events
from clinishare_shared.testing import LoggingBus, PipelineBus, RecordingDb


def _note(i: int, chart: str) -> Envelope:
    return make_event(ChartNoteAdded(note_id=f"n{i}", chart_id=chart, chart_author_id="a", author_id="b"),
                      source="charts", subject=chart)


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
    # by a bare _id equality on FerretDB (the only condition its SQLite handler pushes down), else by a set
    # of ids the _id index serves
    assert all(set(q) == {"_id"} for q in counting.finds)
    if await scans_id_sets(db.charts):
        assert {"_id": "mine"} in counting.finds and all(isinstance(q["_id"], str) for q in counting.finds)
    else:
        assert {"_id": {"$in": ["mine"]}} in counting.finds
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


async def test_a_kicked_document_is_claimed_by_one_insert_and_read_once_before_its_events_leave(db: Any) -> None:
    """The usual pass after a write, nobody else holding the document: the lease insert, then the read of
    what it holds, then the publish: two round trips before the events leave, no lease read."""
    log: list[tuple[str, str]] = []
    bus = LoggingBus(log)
    relay = OutboxRelay(RecordingDb(db, log), ["charts"], bus)
    evs = await _stage(db, "mine", 2)
    relay.kick("charts", "mine")
    assert await relay.pass_after_write() == 2
    assert [e.id for e in bus.sent] == [e.id for e in evs]
    before = log[:log.index(("bus", "publish_many"))]
    assert before[0] == ("_outbox_claims", "insert_many")
    assert [c for c in before[1:]] in ([("charts", "find")], [("charts", "find_one")]), before
    assert await db["_outbox_claims"].count_documents({}) == 0  # given back


async def test_a_kicked_document_someone_else_holds_is_left_to_them(db: Any) -> None:
    from datetime import UTC, datetime, timedelta

    log: list[tuple[str, str]] = []
    bus = LoggingBus(log)
    relay = OutboxRelay(RecordingDb(db, log), ["charts"], bus)
    await _stage(db, "held", 1)
    until = datetime.now(UTC) + timedelta(seconds=60)
    await db["_outbox_claims"].insert_one({"_id": "charts/held", "by": "other:1", "until": until})
    relay.kick("charts", "held")
    assert await relay.pass_after_write() == 0 and bus.sent == []
    assert ("_outbox_claims", "insert_many") in log and ("bus", "publish_many") not in log
    assert (await db["_outbox_claims"].find_one({"_id": "charts/held"}))["by"] == "other:1"  # still theirs
    assert len((await db.charts.find_one({"_id": "held"}))[OUTBOX]) == 1


async def test_a_kicked_document_with_nothing_pending_is_given_back_and_a_parked_one_waits(db: Any) -> None:
    log: list[tuple[str, str]] = []
    bus = LoggingBus(log)
    relay = OutboxRelay(RecordingDb(db, log), ["charts"], bus)
    await db.charts.insert_one({"_id": "empty"})
    relay.kick("charts", "empty")
    assert await relay.pass_after_write() == 0 and bus.sent == []
    assert await db["_outbox_claims"].count_documents({}) == 0  # its lease went back at once
    evs = await _stage(db, "parked", 2)
    bus.unroutable = {evs[0].id}
    relay.kick("charts", "parked")
    assert await relay.pass_after_write() == 0  # unroutable: parked, and retried later
    log.clear()
    relay.kick("charts", "parked")  # a new write to it before its retry time
    assert await relay.pass_after_write() == 0
    assert log == []  # not claimed, not read: it waits for its retry
    bus.unroutable = set()
    relay.retry_parked()  # its consumer is there now: due at once, and the pass after a write takes it
    assert await relay.pass_after_write() == 2
    assert [e.id for e in bus.sent] == [e.id for e in evs]
