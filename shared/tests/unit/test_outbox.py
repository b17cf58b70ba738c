from typing import Any

from clinishare_shared.bus import InMemoryBus, PublishFailed
from clinishare_shared.events import ChartNoteAdded, ConnectionCreated, Envelope, make_event
from clinishare_shared.mongo import new_id
from clinishare_shared.outbox import OUTBOX, OutboxRelay, push_events, strip_outbox, with_events
from clinishare_shared.testing import wait_for


def _note(i: int, chart: str = "ch1") -> Envelope:
    return make_event(ChartNoteAdded(note_id=f"n{i}", chart_id=chart, chart_author_id="a", author_id="b"),
                      source="charts", subject=chart)


async def _collect(bus: InMemoryBus, keys: list[str]) -> list[Envelope]:
    got: list[Envelope] = []

    async def h(ev: Envelope) -> None:
        got.append(ev)

    await bus.subscribe("test", keys, h)
    return got


async def test_insert_and_update_publish_and_leave_document(db: Any) -> None:
    bus = InMemoryBus()
    got = await _collect(bus, ["charts.#"])
    relay = OutboxRelay(db, ["charts"], bus)
    await relay.ensure_indexes()
    e1, e2, e3 = _note(1), _note(2), _note(3)
    await db.charts.insert_one(with_events({"_id": "ch1", "title": "t"}, e1))
    update = {"$set": {"title": "t2"}}
    res = await db.charts.update_one({"_id": "ch1"}, push_events(update, e2, e3))
    assert res.modified_count == 1 and "$push" not in update  # the caller's update is not mutated
    assert await relay.pending() == 3
    assert await relay.run_once() == 3
    await bus.drain()
    assert [e.id for e in got] == [e1.id, e2.id, e3.id]
    doc = await db.charts.find_one({"_id": "ch1"})
    assert doc["title"] == "t2" and doc[OUTBOX] == []
    assert await relay.pending() == 0 and await relay.run_once() == 0
    assert strip_outbox(doc) == {"_id": "ch1", "title": "t2"} and strip_outbox(None) is None


async def test_push_events_merges_existing_push(db: Any) -> None:
    e = _note(1)
    update = push_events({"$push": {"tags": "x"}, "$set": {"a": 1}}, e)
    assert update["$push"]["tags"] == "x" and update["$push"][OUTBOX]["$each"][0]["id"] == e.id
    await db.c.insert_one({"_id": "d", "tags": []})
    await db.c.update_one({"_id": "d"}, update)
    doc = await db.c.find_one({"_id": "d"})
    assert doc["tags"] == ["x"] and doc[OUTBOX][0]["id"] == e.id


async def test_outage_keeps_events_then_publishes_in_order(db: Any) -> None:
    bus = InMemoryBus()
    got = await _collect(bus, ["charts.#"])
    relay = OutboxRelay(db, ["charts"], bus)
    bus.available = False
    events = {f"ch{c}": [_note(i, f"ch{c}") for i in range(4)] for c in range(3)}
    for chart, evs in events.items():
        await db.charts.insert_one(with_events({"_id": chart}, evs[0]))  # the write succeeds
        for ev in evs[1:]:
            await db.charts.update_one({"_id": chart}, push_events({"$set": {"n": ev.data["note_id"]}}, ev))
    assert await relay.run_once() == 0
    assert await relay.pending() == 12
    bus.available = True
    assert await relay.run_once() == 12
    await bus.drain()
    for chart, evs in events.items():
        assert [e.id for e in got if e.subject == chart] == [e.id for e in evs]
    assert len({e.id for e in got}) == 12


async def test_outage_mid_document_resumes_at_the_failed_event(db: Any) -> None:
    class FlakyBus(InMemoryBus):
        fail_after = 2

        async def publish(self, event: Envelope) -> None:
            if self.fail_after == 0:
                raise PublishFailed("down")
            self.fail_after -= 1
            await super().publish(event)

    bus = FlakyBus()
    got = await _collect(bus, ["charts.#"])
    relay = OutboxRelay(db, ["charts"], bus)
    evs = [_note(i) for i in range(5)]
    await db.charts.insert_one(with_events({"_id": "ch1"}, *evs))
    assert await relay.run_once() == 2
    bus.fail_after = 100
    assert await relay.run_once() == 3
    await bus.drain()
    assert [e.id for e in got] == [e.id for e in evs]


async def test_unroutable_document_keeps_its_events_and_does_not_block_others(db: Any) -> None:
    bus = InMemoryBus()
    got = await _collect(bus, ["charts.#"])
    relay = OutboxRelay(db, ["charts"], bus, batch=2)
    conn = make_event(ConnectionCreated(connection_id="c", owner_id="o", target_kind="office", target_id="t"),
                      source="identity", subject="c")
    # more stuck documents (oldest ids) than one batch, then routable ones behind them
    stuck = [(conn.model_copy(update={"id": new_id()}), _note(i)) for i in range(5)]
    for i, events in enumerate(stuck):
        await db.charts.insert_one(with_events({"_id": f"a{i}"}, *events))
    routable = [_note(10 + i, f"b{i}") for i in range(3)]
    for i, ev in enumerate(routable):
        await db.charts.insert_one(with_events({"_id": f"b{i}"}, ev))
    assert await relay.run_once() == 3
    await bus.drain()
    assert sorted(e.id for e in got) == sorted(e.id for e in routable)
    assert await relay.pending() == 10  # both events of each stuck document stay, in order
    # once a consumer binds, they go out, in document order
    ids: list[str] = []

    async def h(ev: Envelope) -> None:
        ids.append(ev.id)

    await bus.subscribe("identity", ["identity.#"], h)
    # parked with back-off: the next pass does not hammer the broker (nor the log) with them again
    assert await relay.run_once() == 0
    relay.retry_parked()
    assert await relay.run_once() == 10
    await bus.drain()
    assert ids == [c.id for c, _ in stuck]  # in document order
    assert [e.id for e in got][len(routable):] == [n.id for _, n in stuck]  # and their notes, in document order too
    assert await relay.pending() == 0


async def test_background_relay_kick(db: Any) -> None:
    bus = InMemoryBus()
    got = await _collect(bus, ["charts.#"])
    relay = OutboxRelay(db, ["charts"], bus, poll_interval=30)
    relay.start()
    relay.start()  # idempotent
    try:
        await wait_for(lambda: relay._task is not None)
        ev = _note(1)
        await db.charts.insert_one(with_events({"_id": "x"}, ev))
        relay.kick()
        await wait_for(lambda: len(got) == 1 and relay.published == 1, timeout=5, message="kicked relay publishes")
    finally:
        await relay.stop()
    assert relay._task is None
