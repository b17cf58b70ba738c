"""New documents written beside a running relay (``outbox.insert_fresh``): the writer takes the relay's
lease before the document exists, so the relay publishes the events it is handed from memory, with no
claim of its own and no read of the document; every guarantee of the claimed path still holds (a replica
sweeping meanwhile leaves the document alone, a writer that died is taken over once its lease ran out, a
failed insert gives the lease back, a broker that is down leaves the events for the claimed path)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from clinishare_shared.events import Envelope
from clinishare_shared.outbox import CLAIMS, OUTBOX, OutboxRelay, insert_fresh, no_kick
from clinishare_shared.events import ChartNoteAdded, make_event
from clinishare_shared.testing import LoggingBus, PipelineBus, RecordingDb, wait_for


def _note(i: int, chart: str) -> Envelope:
    return make_event(ChartNoteAdded(note_id=f"n{i}", chart_id=chart, chart_author_id="a", author_id="b"),
                      source="charts", subject=chart)


def _running(relay: OutboxRelay) -> None:
    """Make ``relay`` count as running without its loop (the test drives its passes)."""
    relay._task = asyncio.get_running_loop().create_future()  # type: ignore[assignment]


async def _write(relay: OutboxRelay, doc_id: str, *events: Envelope, coll: Any = None) -> None:
    await insert_fresh(coll if coll is not None else relay.db["charts"], {"_id": doc_id}, *events, kick=relay.kick,
                       claims=relay)


async def test_a_new_document_s_events_leave_without_a_claim_or_a_read_by_the_relay(db: Any) -> None:
    log: list[tuple[str, str]] = []
    bus = LoggingBus(log)
    relay = OutboxRelay(RecordingDb(db, log), ["charts"], bus, poll_interval=0.01)
    relay.start()
    try:
        await wait_for(lambda: not relay._sweep_due, message="the start-up sweep")
        await asyncio.sleep(0.05)  # the pass that sweep began ends (its calls are not this test's)
        log.clear()
        evs = [_note(i, "c1") for i in range(3)]
        await _write(relay, "c1", *evs)
        await wait_for(lambda: len(bus.sent) == 3, message="the events published")
    finally:
        await relay.stop()
    assert [e.id for e in bus.sent] == [e.id for e in evs]  # in order, each once
    before = log[:log.index(("bus", "publish_many"))]
    # the writer's lease and the document; the relay itself neither claimed nor read anything
    assert before == [("_outbox_claims", "insert_one"), ("charts", "insert_one")], before
    assert not [c for c in log if c[1] in ("find", "find_one")], log
    assert await relay.pending() == 0  # removed: the events handed over equal the stored ones
    assert await db[CLAIMS].count_documents({}) == 0  # the lease given back


async def test_a_replica_sweeping_meanwhile_leaves_the_new_document_to_its_writer(db: Any) -> None:
    bus = PipelineBus()
    writer, replica = OutboxRelay(db, ["charts"], bus), OutboxRelay(db, ["charts"], bus)
    _running(writer)
    ev = _note(1, "c1")
    await _write(writer, "c1", ev)
    assert await replica.run_once() == 0 and bus.sent == []  # held by the writer's lease
    assert await writer.publish_fresh() == 1
    assert await replica.run_once() == 0
    assert [e.id for e in bus.sent] == [ev.id] and await writer.pending() == 0


async def test_a_writer_that_died_before_publishing_is_taken_over_once_its_lease_ran_out(db: Any) -> None:
    bus = PipelineBus()
    writer = OutboxRelay(db, ["charts"], bus, lease_seconds=0.3)
    replica = OutboxRelay(db, ["charts"], bus)
    _running(writer)
    ev = _note(1, "c1")
    await _write(writer, "c1", ev)
    assert await replica.run_once() == 0

    async def taken_over() -> bool:
        return await replica.run_once() == 1

    await wait_for(taken_over, timeout=5.0, message="the replica taking the lapsed lease over")
    # the writer, back too late: what it holds would be published on a lease that ran out, so it is not
    assert await writer.publish_fresh() == 0
    assert await writer.pass_after_write() == 0  # staged again, and nothing is pending any more
    assert [e.id for e in bus.sent] == [ev.id]


async def test_a_failed_insert_gives_the_lease_back(db: Any) -> None:
    relay = OutboxRelay(db, ["charts"], PipelineBus())
    _running(relay)
    await db.charts.insert_one({"_id": "c1", "v": 1})
    with pytest.raises(DuplicateKeyError):
        await _write(relay, "c1", _note(1, "c1"), coll=db.charts)
    assert await db[CLAIMS].count_documents({}) == 0
    assert await db.charts.find_one({"_id": "c1"}) == {"_id": "c1", "v": 1} and relay._fresh == {}


async def test_without_a_running_relay_it_is_an_insert_and_a_kick(db: Any) -> None:
    relay = OutboxRelay(db, ["charts"], PipelineBus())  # held: never started
    await _write(relay, "c1", _note(1, "c1"), coll=db.charts)
    assert relay._staged == {"charts": {"c1"}} and relay._fresh == {}
    assert await db[CLAIMS].count_documents({}) == 0
    await insert_fresh(db.charts, {"_id": "c2"}, _note(2, "c2"), kick=no_kick, claims=None)
    assert await relay.pass_after_write() == 1 and await relay.run_once() == 1


async def test_a_broker_that_is_down_leaves_the_new_document_to_the_claimed_path(db: Any) -> None:
    bus = PipelineBus()
    bus.down = True
    relay = OutboxRelay(db, ["charts"], bus)
    _running(relay)
    evs = [_note(i, "c1") for i in range(2)]
    await _write(relay, "c1", *evs, coll=db.charts)
    assert await relay.publish_fresh() == 0
    assert len((await db.charts.find_one({"_id": "c1"}))[OUTBOX]) == 2  # nothing lost
    assert await db[CLAIMS].count_documents({}) == 0 and relay._staged == {"charts": {"c1"}}
    bus.down = False
    assert await relay.pass_after_write() == 2
    assert [e.id for e in bus.sent] == [e.id for e in evs] and await relay.pending() == 0


async def test_a_burst_of_new_documents_goes_out_in_one_pipelined_round(db: Any) -> None:
    bus = PipelineBus()
    relay = OutboxRelay(db, ["charts"], bus)
    _running(relay)
    evs = [_note(i, f"c{i}") for i in range(20)]
    await asyncio.gather(*(_write(relay, f"c{i:02d}", ev, coll=db.charts) for i, ev in enumerate(evs)))
    assert await relay.publish_fresh() == 20
    assert len(bus.batches) == 1 and sorted(bus.batches[0]) == sorted(e.id for e in evs)
    assert await relay.pending() == 0 and await db[CLAIMS].count_documents({}) == 0


async def test_a_relay_stopping_gives_back_the_new_documents_it_had_not_started_on(db: Any) -> None:
    bus = PipelineBus()
    relay = OutboxRelay(db, ["charts"], bus)
    _running(relay)
    ev = _note(1, "c1")
    await _write(relay, "c1", ev, coll=db.charts)
    await relay.stop()
    assert await db[CLAIMS].count_documents({}) == 0 and relay._fresh == {}
    successor = OutboxRelay(db, ["charts"], bus)  # after a restart: its first sweep, no lease to wait out
    assert await successor.run_once() == 1 and [e.id for e in bus.sent] == [ev.id]
