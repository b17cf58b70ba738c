"""The expiry sweep reads the lookups of the minutes since its last complete sweep, not the collection:
FerretDB scans a whole collection for a query on ``expires_at`` (measured in the bench's five-process run
on v1.24.2: 367 ms a sweep, every 5 s, with a few thousand grants). The collection is read only by the
first sweep and one every ``EXPIRY_FULL_EVERY``, which also find a grant the lookups lack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clinishare_charts import service
from clinishare_charts.store import EXPIRY_FULL_EVERY, EXPIRY_GRACE, ChartStore, expiry_key, expiry_keys
from clinishare_shared.testing import FilterSpy

T0 = datetime(2026, 6, 1, 9, 0, 30, tzinfo=UTC)


async def _grant(store: ChartStore, expires_at: datetime | None, recipient: str = "dr-b") -> dict[str, Any]:
    return await service.stage_grant(store=store, owner_id="dr-a", rule="all", chart_id=None, patient_id=None,
                                     practitioner_ids=[recipient], office_ids=[], expires_at=expires_at)


async def _kept_and_revoked(store: ChartStore, kept_at: datetime, revoked_at: datetime) -> tuple[dict[str, Any], ...]:
    """Two expiring grants, the second revoked."""
    kept, revoked = await _grant(store, kept_at), await _grant(store, revoked_at)
    await service.revoke_grant(store=store, grant_id=revoked["_id"], owner_id="dr-a")
    return kept, revoked


def _by_id_only(filters: list[Any]) -> bool:
    return all(isinstance(f, dict) and set(f) == {"_id"} for f in filters)


async def _expired(store: ChartStore) -> set[str]:
    return {d["_id"] for d in await store.expiries.find({}).to_list()}


def test_expiry_keys_name_each_minute_once_in_utc() -> None:
    assert expiry_key(datetime(2026, 6, 1, 11, 5, 59, tzinfo=UTC)) == "x:2026-06-01T11:05"
    east = datetime(2026, 6, 1, 13, 5, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert expiry_key(east) == "x:2026-06-01T13:05"
    assert expiry_keys(datetime(2026, 6, 1, 9, 58, 40, tzinfo=UTC), datetime(2026, 6, 1, 10, 1, 0, tzinfo=UTC)) == [
        "x:2026-06-01T09:58", "x:2026-06-01T09:59", "x:2026-06-01T10:00", "x:2026-06-01T10:01"]


async def test_after_the_first_sweep_due_grants_are_read_by_id_from_their_minutes(
        mongo_client: Any, db_name: str) -> None:
    db = mongo_client[db_name]
    store = ChartStore(db)
    soon = await _grant(store, T0 + timedelta(seconds=20))
    later = await _grant(store, T0 + timedelta(hours=3))
    never = await _grant(store, None)
    assert await store.index.find_one({"_id": expiry_key(soon["expires_at"])}) is not None
    assert await store.index.find_one({"_id": expiry_key(later["expires_at"])}) is not None
    assert await service.expire_due(store=store, now=T0) == 0  # the first sweep reads the collection
    spy = store.grants = FilterSpy(store.grants)
    assert await service.expire_due(store=store, now=T0 + timedelta(seconds=5)) == 0
    assert await service.expire_due(store=store, now=T0 + timedelta(seconds=25)) == 1
    assert await _expired(store) == {soon["_id"]}
    seen = [f for _, f in spy.calls]
    assert seen and _by_id_only(seen), seen  # no query on expires_at: nothing scanned
    assert await service.expire_due(store=store, now=T0 + timedelta(seconds=30)) == 0  # announced once
    assert never["_id"] not in await _expired(store) and later["_id"] not in await _expired(store)


async def test_a_revoked_grant_in_its_minute_is_not_expired_and_a_passed_minute_is_cleared(
        mongo_client: Any, db_name: str) -> None:
    store = ChartStore(mongo_client[db_name])
    kept, _ = await _kept_and_revoked(store, T0 + timedelta(seconds=10), T0 + timedelta(seconds=10))
    assert await service.expire_due(store=store, now=T0) == 0
    assert await service.expire_due(store=store, now=T0 + timedelta(seconds=15)) == 1
    assert await _expired(store) == {kept["_id"]}
    minute = expiry_key(kept["expires_at"])
    assert await store.index.find_one({"_id": minute}) is not None  # still within the grace: read again
    await service.expire_due(store=store, now=T0 + EXPIRY_GRACE + timedelta(minutes=1))
    assert await store.index.find_one({"_id": minute}) is None  # no sweep reads it again: gone
    assert await _expired(store) == {kept["_id"]}


async def test_a_sweep_that_fills_its_batch_is_not_done_and_the_next_goes_on_from_the_same_minutes(
        mongo_client: Any, db_name: str) -> None:
    store = ChartStore(mongo_client[db_name])
    assert await service.expire_due(store=store, now=T0, batch=2) == 0
    grants = [await _grant(store, T0 + timedelta(seconds=5 + i)) for i in range(5)]
    late = T0 + EXPIRY_GRACE + timedelta(minutes=3)  # past the grace of every minute they are in
    assert await service.expire_due(store=store, now=late, batch=2) == 2
    assert await store.index.find_one({"_id": expiry_key(grants[0]["expires_at"])}) is not None  # not done yet
    assert await service.expire_due(store=store, now=late, batch=2) == 2
    assert await service.expire_due(store=store, now=late, batch=2) == 1
    assert await _expired(store) == {g["_id"] for g in grants}
    assert await store.index.find_one({"_id": expiry_key(grants[0]["expires_at"])}) is None


async def test_a_grant_the_lookups_lack_is_found_by_the_next_full_sweep(mongo_client: Any, db_name: str) -> None:
    """Written by a release without expiry lookups, or listed later than the grace: the incremental
    sweeps cannot see it; the collection is read again after EXPIRY_FULL_EVERY and it is announced."""
    store = ChartStore(mongo_client[db_name])
    assert await service.expire_due(store=store, now=T0) == 0
    unlisted = await _grant(store, T0 + timedelta(seconds=10))
    await store.index.delete_many({"_id": expiry_key(unlisted["expires_at"])})
    assert await service.expire_due(store=store, now=T0 + timedelta(minutes=1)) == 0
    assert await service.expire_due(store=store, now=T0 + EXPIRY_FULL_EVERY + timedelta(seconds=1)) == 1
    assert await _expired(store) == {unlisted["_id"]}


async def test_building_the_lookups_lists_active_expiring_grants_in_their_minutes(
        mongo_client: Any, db_name: str) -> None:
    store = ChartStore(mongo_client[db_name])
    expiring, revoked = await _kept_and_revoked(store, T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    await store.index.delete_many({})
    await store.build_lookups()
    listed = await store.index_sets.members([expiry_key(expiring["expires_at"]), expiry_key(revoked["expires_at"])])
    assert listed == {expiry_key(expiring["expires_at"]): [expiring["_id"]]}


async def test_a_replica_that_lost_the_claim_marks_the_grant_with_the_winner_s_time(
        mongo_client: Any, db_name: str) -> None:
    """The winner of the claim stopped before marking the grant: a later sweep of another replica marks it
    (so it is no longer due) with the claim's time, and announces nothing again."""
    db = mongo_client[db_name]
    winner, other = ChartStore(db), ChartStore(db)
    grant = await _grant(winner, T0 + timedelta(seconds=5))
    won_at = T0 + timedelta(seconds=6)
    assert await winner.expiries.insert_one({"_id": grant["_id"], "owner_id": "dr-a", "at": won_at})
    assert await service.expire_due(store=other, now=T0 + timedelta(seconds=20)) == 0
    stored = await other.grants.find_one({"_id": grant["_id"]})
    assert stored["expired_at"].replace(tzinfo=UTC) == won_at
    assert (await other.due_grants(T0 + timedelta(minutes=1), batch=10)).grants == []
