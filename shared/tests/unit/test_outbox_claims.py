"""Relays claim their work: any number of replicas over one database publish each staged event once."""

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from clinishare_shared.bus.base import PublishFailed
from clinishare_shared.events import ChartNoteAdded, Envelope, make_event
from clinishare_shared.outbox import CLAIMS, OUTBOX, OutboxRelay, push_events, strip_outbox, with_events
from clinishare_shared.testing import FilterSpyDb, StubBus


def _note(i: int, chart: str) -> Envelope:
    return make_event(ChartNoteAdded(note_id=f"n{i}", chart_id=chart, chart_author_id="a", author_id="b"),
                      source="charts", subject=chart)


class RecordingBus(StubBus):
    """Confirms every publish after yielding to the loop (so relays interleave), and records it."""

    def __init__(self, pause: float = 0.0) -> None:
        self.sent: list[Envelope] = []
        self.pause = pause

    async def publish(self, event: Envelope) -> None:
        await asyncio.sleep(self.pause)
        self.sent.append(event)


async def _stage(db: Any, docs: int, per_doc: int) -> dict[str, list[str]]:
    staged: dict[str, list[str]] = {}
    for d in range(docs):
        evs = [_note(i, f"ch{d}") for i in range(per_doc)]
        await db.charts.insert_one(with_events({"_id": f"ch{d:04d}"}, evs[0]))
        for ev in evs[1:]:
            await db.charts.update_one({"_id": f"ch{d:04d}"}, push_events({"$set": {"n": ev.data["note_id"]}}, ev))
        staged[f"ch{d}"] = [e.id for e in evs]
    return staged


async def test_two_relays_over_one_database_publish_each_event_once_in_order(db: Any) -> None:
    bus = RecordingBus()
    one, two = OutboxRelay(db, ["charts"], bus, batch=7), OutboxRelay(db, ["charts"], bus, batch=7)
    staged = await _stage(db, docs=100, per_doc=3)
    await asyncio.gather(one.run_once(), two.run_once(), one.run_once(), two.run_once())
    ids = [e.id for e in bus.sent]
    assert len(ids) == 300 and len(set(ids)) == 300, Counter(ids).most_common(3)
    assert one.published > 0 and two.published > 0  # both did part of the work
    for chart, expected in staged.items():
        assert [e.id for e in bus.sent if e.subject == chart] == expected  # per-document order
    assert await one.pending() == 0
    assert await db[CLAIMS].count_documents({}) == 0  # every lease given back


async def test_a_held_claim_is_left_alone_until_it_expires_then_taken_over(db: Any) -> None:
    bus = RecordingBus()
    dead = OutboxRelay(db, ["charts"], bus, lease_seconds=30)
    other = OutboxRelay(db, ["charts"], bus)
    await _stage(db, docs=4, per_doc=2)
    held, _, token = await dead.claim(db.charts)  # claims, then "dies" without publishing
    assert token is not None and len(held) == 4
    assert await other.run_once() == 0 and bus.sent == []
    # the lease runs out (moved into the past rather than waiting 30 s)
    await db[CLAIMS].update_many({}, {"$set": {"until": datetime.now(UTC) - timedelta(seconds=1)}})
    third = OutboxRelay(db, ["charts"], bus)
    # two replicas find the expired leases at once: each document is taken over by one of them
    counts = await asyncio.gather(other.run_once(), third.run_once())
    assert sum(counts) == 8
    assert len({e.id for e in bus.sent}) == 8 and await other.pending() == 0


async def test_new_events_staged_while_claimed_go_out_next_pass(db: Any) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(db, ["charts"], bus)
    await _stage(db, docs=1, per_doc=1)
    held, _, token = await relay.claim(db.charts)
    late = _note(9, "ch0")
    await db.charts.update_one({"_id": "ch0000"}, push_events({"$set": {"x": 1}}, late))
    assert token is not None
    sent, _ = await relay._publish_held(db.charts, held, token)
    assert sent == 1
    doc = await db.charts.find_one({"_id": "ch0000"})
    assert [e["id"] for e in doc[OUTBOX]] == [late.id]  # only what was sent is removed
    assert await db[CLAIMS].count_documents({}) == 0
    assert await relay.run_once() == 1 and bus.sent[-1].id == late.id


async def test_crash_after_confirm_before_removal_repeats_only_that_batch(db: Any) -> None:
    bus = RecordingBus()
    crashing = OutboxRelay(db, ["charts"], bus, lease_seconds=30)
    await _stage(db, docs=3, per_doc=2)

    async def die(*args: Any) -> None:
        raise RuntimeError("killed between the confirms and the removals")

    crashing._finish = die  # type: ignore[method-assign]
    try:
        await crashing.run_once()
    except RuntimeError:
        pass
    # the pipelined batch (both rounds of three documents) was confirmed, then the relay died
    assert len(bus.sent) == 6
    await db[CLAIMS].update_many({}, {"$set": {"until": datetime.now(UTC) - timedelta(seconds=1)}})
    survivor = OutboxRelay(db, ["charts"], bus)
    assert await survivor.run_once() == 6
    counts = Counter(e.id for e in bus.sent)
    assert sorted(counts.values()) == [2] * 6  # each confirmed-but-not-removed event repeated once, no more
    assert await survivor.pending() == 0


async def test_a_relay_whose_lease_ran_out_leaves_the_new_holder_alone(db: Any) -> None:
    bus = RecordingBus()
    slow = OutboxRelay(db, ["charts"], bus, lease_seconds=30)
    await _stage(db, docs=1, per_doc=2)
    held, _, token = await slow.claim(db.charts)
    assert token is not None
    # its lease ran out and another relay took the document over
    await db[CLAIMS].update_many({}, {"$set": {"until": datetime.now(UTC) - timedelta(seconds=1)}})
    other = OutboxRelay(db, ["charts"], bus)
    taken, _, other_token = await other.claim(db.charts)
    assert other_token is not None and len(taken) == 1
    slow._until = datetime.now(UTC) - timedelta(seconds=1)
    await slow._publish_held(db.charts, held, token)  # stalled relay: publishes nothing on an expired lease
    assert bus.sent == []
    lease = await db[CLAIMS].find_one({"_id": "charts/ch0000"})
    assert lease["by"] == other_token  # the new holder's lease is not dropped
    await other._publish_held(db.charts, taken, other_token)
    doc = await db.charts.find_one({"_id": "ch0000"})
    assert doc[OUTBOX] == [] and strip_outbox(doc) == {"_id": "ch0000", "n": "n1"} and len(bus.sent) == 2


async def test_a_pass_gives_back_what_it_cannot_publish_within_half_its_lease(db: Any) -> None:
    bus = RecordingBus(pause=0.25)
    relay = OutboxRelay(db, ["charts"], bus, lease_seconds=2.0)
    await _stage(db, docs=10, per_doc=1)
    first = await relay.run_once()
    assert 0 < first < 10
    assert await db[CLAIMS].count_documents({}) == 0
    while await relay.pending():
        await relay.run_once()
    assert len({e.id for e in bus.sent}) == len(bus.sent) == 10


class LostConfirmsBus(RecordingBus):
    """A broker that closes the connection while confirms are outstanding: the events listed in
    ``lose`` reach the broker (they are in ``routed``) but their publish fails in doubt; the events in
    ``drop`` fail in doubt without reaching it. ``routed_since`` answers from what was routed."""

    def __init__(self, *, lose: set[str] = frozenset(), drop: set[str] = frozenset(), can_tell: bool = True) -> None:
        super().__init__()
        self.lose, self.drop, self.can_tell = set(lose), set(drop), can_tell
        self.asked: list[tuple[set[str], datetime]] = []
        self.away = False

    async def publish(self, event: Envelope) -> None:
        if event.id in self.drop:
            self.drop.discard(event.id)
            raise PublishFailed("broker unavailable: connection closed", in_doubt=True)
        self.sent.append(event)  # routed: every bound queue has it
        if event.id in self.lose:
            self.lose.discard(event.id)
            raise PublishFailed("broker unavailable: connection closed", in_doubt=True)

    async def routed_since(self, event_ids: Any, since: datetime) -> set[str] | None:
        if self.away:
            raise PublishFailed("broker not connected")
        self.asked.append((set(event_ids), since))
        if not self.can_tell:
            return None
        return {e.id for e in self.sent} & set(event_ids)


async def test_an_event_whose_confirm_was_lost_is_not_published_again_when_the_broker_routed_it(db: Any) -> None:
    staged = await _stage(db, docs=3, per_doc=2)
    first = {chart: ids[0] for chart, ids in staged.items()}
    # ch0's first event reached the broker but its confirm was lost; ch1's never reached it
    bus = LostConfirmsBus(lose={first["ch0"]}, drop={first["ch1"]})
    relay = OutboxRelay(db, ["charts"], bus)
    await relay.run_once()
    leases = {c["_id"]: c async for c in db[CLAIMS].find({})}
    # the relay keeps the leases of the documents in doubt, saying which event is in doubt
    assert {k: v["doubt"]["event"] for k, v in leases.items()} == {"charts/ch0000": first["ch0"],
                                                                    "charts/ch0001": first["ch1"]}
    await relay.run_once()  # the broker is back: ask it first, then publish the rest
    assert bus.asked and bus.asked[0][0] == {first["ch0"], first["ch1"]}
    ids = [e.id for e in bus.sent]
    assert Counter(ids)[first["ch0"]] == 1  # routed once, not published again
    assert Counter(ids)[first["ch1"]] == 1  # never routed: published now
    assert (relay.doubts_asked, relay.doubts_routed, relay.unverifiable) == (2, 1, 0)
    assert sorted(ids) == sorted(i for chart in staged.values() for i in chart) and len(ids) == 6
    for chart, expected in staged.items():
        assert [e.id for e in bus.sent if e.subject == chart] == expected  # order kept
    assert await relay.pending() == 0 and await db[CLAIMS].count_documents({}) == 0


async def test_a_relay_taking_over_a_lease_in_doubt_asks_the_broker_first(db: Any) -> None:
    staged = await _stage(db, docs=1, per_doc=2)
    bus = LostConfirmsBus(lose={staged["ch0"][0]})
    dying = OutboxRelay(db, ["charts"], bus, lease_seconds=30)
    await dying.run_once()  # the confirm is lost, then this relay dies holding the lease in doubt
    other = OutboxRelay(db, ["charts"], bus)
    assert await other.run_once() == 0  # not expired: left alone
    await db[CLAIMS].update_many({}, {"$set": {"until": datetime.now(UTC) - timedelta(seconds=1)}})
    await other.run_once()
    assert [e.id for e in bus.sent] == staged["ch0"]  # each once, in order
    assert await other.pending() == 0


async def test_events_in_doubt_wait_while_the_broker_cannot_be_asked(db: Any) -> None:
    staged = await _stage(db, docs=1, per_doc=1)
    bus = LostConfirmsBus(lose={staged["ch0"][0]})
    relay = OutboxRelay(db, ["charts"], bus)
    await relay.run_once()
    bus.away = True
    await relay.run_once()  # cannot ask: nothing is published again, the doubt stays on the lease
    assert [e.id for e in bus.sent] == staged["ch0"]
    assert (await db[CLAIMS].find_one({}))["doubt"]["event"] == staged["ch0"][0]
    bus.away = False
    await relay.run_once()
    assert [e.id for e in bus.sent] == staged["ch0"] and await relay.pending() == 0


async def test_a_bus_that_cannot_tell_publishes_events_in_doubt_again(db: Any) -> None:
    """At least once: without a way to ask (no events stream), an event in doubt goes out again and
    consumers absorb the repeat by its id."""
    staged = await _stage(db, docs=1, per_doc=1)
    bus = LostConfirmsBus(lose={staged["ch0"][0]}, can_tell=False)
    relay = OutboxRelay(db, ["charts"], bus)
    await relay.run_once()
    await relay.run_once()
    assert [e.id for e in bus.sent] == staged["ch0"] * 2 and await relay.pending() == 0
    assert relay.unverifiable == 1  # counted (clinishare_outbox_events_unconfirmed{resolution="unverifiable"})


async def test_an_event_sent_to_a_broker_that_died_goes_out_again_and_is_counted(db: Any) -> None:
    """A broker that dies (or shuts down) before confirming is not asked: its queues may each have kept
    or lost the event, so it is published again, and the possible repeat is counted."""
    staged = await _stage(db, docs=2, per_doc=1)

    class DyingBroker(RecordingBus):
        failed = False

        async def publish(self, event: Envelope) -> None:
            if not self.failed:
                self.failed = True
                self.sent.append(event)  # it may be there
                raise PublishFailed("broker unavailable: ConnectionResetError", sent=True)
            await super().publish(event)

        async def routed_since(self, event_ids: Any, since: datetime) -> set[str] | None:
            raise AssertionError("a broker that died is not asked")

    bus = DyingBroker()
    relay = OutboxRelay(db, ["charts"], bus)
    await relay.run_once()
    await relay.run_once()
    assert relay.unverifiable == 1 and relay.doubts_asked == 0
    assert sorted(e.id for e in bus.sent) == sorted([staged["ch0"][0], *staged["ch0"], *staged["ch1"]])
    assert await relay.pending() == 0 and await db[CLAIMS].count_documents({}) == 0


def _deletes(calls: list[tuple[str, Any]]) -> list[Any]:
    """The filters of the deletes among a ``FilterSpy``'s calls (a bulk write's, each statement's)."""
    return [f for name, fs in calls if name in ("delete_one", "delete_many", "bulk_write")
            for f in (fs if name == "bulk_write" else [fs])]


async def test_leases_given_back_early_go_by_bare_id_and_late_ones_only_if_still_ours(db: Any) -> None:
    """With more than half of the lease left nobody else can hold them: deleted by bare ``_id`` (FerretDB
    serves that from its index; ``by`` in the filter made it scan the lease collection on every pass).
    With less left, a relay whose clock is ahead may have taken one over: only leases still carrying this
    relay's token go."""
    bus = RecordingBus()
    await _stage(db, docs=3, per_doc=1)
    relay = OutboxRelay(db, ["charts"], bus, lease_seconds=30)
    spy = relay.db = FilterSpyDb(db, [CLAIMS])
    assert await relay.run_once() == 3
    deletes = _deletes(spy.calls)
    assert deletes and all(set(f) == {"_id"} and isinstance(f["_id"], (str, dict)) for f in deletes)
    assert all(not isinstance(f["_id"], dict) or set(f["_id"]) == {"$in"} for f in deletes)
    assert await db[CLAIMS].count_documents({}) == 0
    for d in ("cx0", "cx1"):
        await db.charts.insert_one(with_events({"_id": d}, _note(0, d)))
    held, _, token = await relay.claim(db.charts)
    assert token is not None and len(held) == 2
    await db[CLAIMS].update_one({"_id": "charts/cx0"}, {"$set": {"by": "ahead:relay"}})  # taken over
    relay._until = datetime.now(UTC) + timedelta(seconds=10)  # less than half of 30 s left
    spy.calls.clear()
    await relay._release(db.charts, [d["_id"] for d in held], token)
    assert [set(f) for f in _deletes(spy.calls)] == [{"_id", "by"}]
    assert [c["_id"] async for c in db[CLAIMS].find({})] == ["charts/cx0"]  # the other relay's lease stays
