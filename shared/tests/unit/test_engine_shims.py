"""The shims for what FerretDB 1.24 lacks, run on the session's engine (FerretDB under `make test`, MongoDB
with MONGODB_URL) and, every time, on the in-process fallback too: each must mean the same on both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from clinishare_shared import mongo
from clinishare_shared.mongo import (
    InProcessMongoClient, ensure_ttl_index, find_by_ids, insert_new, open_client, pull_exact, purge_expired,
    delete_by_ids, find_by_id, matches, scans_id_sets, server_engine, update_by_ids, update_each,
)
from clinishare_shared.testing import FilterSpy


@pytest.fixture(params=["session-engine", "in-process"])
async def any_db(request: pytest.FixtureRequest, mongo_client: Any, db_name: str) -> AsyncIterator[Any]:
    if request.param == "session-engine":
        yield mongo_client[db_name]
        return
    client = open_client(None)
    yield client[db_name]
    await client.close()


async def test_pull_exact_removes_the_stored_element_and_only_it(any_db: Any) -> None:
    outbox = [{"id": "e1", "type": "t", "data": {"a": 1}}, {"id": "e2", "type": "t", "data": {"a": 2}}]
    await any_db.docs.insert_one({"_id": "d", "_outbox": outbox})
    stored = (await any_db.docs.find_one({"_id": "d"}))["_outbox"]
    result = await any_db.docs.update_one({"_id": "d"}, pull_exact("_outbox", stored[0]))
    assert result.modified_count == 1
    assert (await any_db.docs.find_one({"_id": "d"}))["_outbox"] == [outbox[1]]
    # an element that is not (or no longer) there: nothing changes
    result = await any_db.docs.update_one({"_id": "d"}, pull_exact("_outbox", stored[0]))
    assert result.modified_count == 0
    assert (await any_db.docs.find_one({"_id": "d"}))["_outbox"] == [outbox[1]]


async def test_an_update_that_breaks_a_unique_index_is_a_duplicate_key_error(any_db: Any) -> None:
    """FerretDB answers such an update with InternalError "UNIQUE constraint failed" (inserts and upserts
    give 11000 there too): the client raises DuplicateKeyError for it, so callers catch one error."""
    await any_db.pins.create_index("pin", unique=True, name="pin_unique")
    await any_db.pins.insert_many([{"_id": "a", "pin": "P1"}, {"_id": "b", "pin": "P2"}])
    with pytest.raises(DuplicateKeyError):
        await any_db.pins.update_one({"_id": "b"}, {"$set": {"pin": "P1"}})
    with pytest.raises(DuplicateKeyError):
        await any_db.pins.find_one_and_update({"_id": "b"}, {"$set": {"pin": "P1"}})
    assert (await any_db.pins.find_one({"_id": "b"}))["pin"] == "P2"  # nothing changed
    # any other failure still comes through as it is (a malformed update: OperationFailure on a server)
    with pytest.raises((OperationFailure, ValueError)) as failure:
        await any_db.pins.update_one({"_id": "b"}, {"$bogus": {"pin": "P3"}})
    assert not isinstance(failure.value, DuplicateKeyError)


async def test_insert_new_is_false_when_a_unique_index_holds_the_key(any_db: Any) -> None:
    await any_db.claims.create_index("slot", unique=True, name="slot_unique")
    assert await insert_new(any_db.claims, {"_id": "a", "slot": 1}) is True
    assert await insert_new(any_db.claims, {"_id": "a", "slot": 2}) is False  # the _id
    assert await insert_new(any_db.claims, {"_id": "b", "slot": 1}) is False  # another unique index
    assert [d["_id"] for d in await any_db.claims.find().to_list()] == ["a"]


async def test_ttl_index_deletes_expired_documents_on_every_engine(any_db: Any) -> None:
    server_side = await ensure_ttl_index(any_db.seen, "at", expire_after_seconds=60, name="seen_ttl")
    now = datetime.now(UTC)
    await any_db.seen.insert_many([{"_id": "old", "at": now - timedelta(seconds=61)},
                                   {"_id": "fresh", "at": now - timedelta(seconds=30)},
                                   {"_id": "undated"}])
    if server_side:
        pytest.skip("the server keeps a real TTL index (MongoDB): its TTL monitor deletes, on its own schedule")
    assert await purge_expired(any_db, now=now) == 1
    assert sorted(d["_id"] for d in await any_db.seen.find().to_list()) == ["fresh", "undated"]
    # the index that replaces the TTL one still exists, under the same name
    assert "seen_ttl" in await any_db.seen.index_information()


async def test_ttl_purge_touches_only_its_own_database(mongo_client: Any, unique: str) -> None:
    first, second = mongo_client[f"test_{unique}_a"], mongo_client[f"test_{unique}_b"]
    mongo_client.test_databases.extend([first.name, second.name])
    old = datetime.now(UTC) - timedelta(days=2)
    for db in (first, second):
        if await ensure_ttl_index(db.seen, "at", expire_after_seconds=86400):
            pytest.skip("real TTL index on this server")
        await db.seen.insert_one({"_id": 1, "at": old})
    await purge_expired(first)
    assert await first.seen.count_documents({}) == 0
    assert await second.seen.count_documents({}) == 1


async def test_sparse_unique_index_allows_many_documents_without_the_field(any_db: Any) -> None:
    # FerretDB ignores `sparse`, but its SQLite unique index treats missing values as distinct, which is
    # what a sparse unique index means for documents without the field; a present value stays unique.
    await any_db.pins.create_index("pin", unique=True, sparse=True, name="pin_unique")
    await any_db.pins.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3, "pin": "A"}])
    with pytest.raises(DuplicateKeyError):
        await any_db.pins.insert_one({"_id": 4, "pin": "A"})
    await any_db.pins.update_one({"_id": 3}, {"$unset": {"pin": ""}})
    await any_db.pins.insert_one({"_id": 5, "pin": "A"})  # freed by removing the field


async def test_in_process_fallback_round_trips_through_bson() -> None:
    client = InProcessMongoClient()
    db = client["t"]
    at = datetime(2026, 1, 2, 3, 4, 5, 678_999, tzinfo=UTC)
    await db.c.insert_one({"_id": 1, "at": at, "pair": (1, 2)})
    doc = await db.c.find_one({"_id": 1})
    assert doc["at"] == at.replace(microsecond=678_000)  # milliseconds, as a server stores them
    assert doc["pair"] == [1, 2]
    await db.c.update_one({"_id": 1}, {"$set": {"later": at}})
    assert (await db.c.find_one({"_id": 1}))["later"].microsecond == 678_000
    with pytest.raises(Exception):
        await db.c.insert_one({"_id": 2, "bad": object()})  # a server could not store it either
    # a date in another zone is the same instant, read back in UTC; queries and operators compare instants
    east = at.astimezone(timezone(timedelta(hours=2)))
    await db.c.insert_one({"_id": 3, "at": east})
    back = (await db.c.find_one({"_id": 3}))["at"]
    assert back == at.replace(microsecond=678_000) and back.utcoffset() == timedelta(0)
    assert [d["_id"] for d in await db.c.find({"at": {"$gte": at.replace(microsecond=678_000)}}).to_list()] == [1, 3]
    await db.c.update_one({"_id": 3}, {"$max": {"at": east + timedelta(seconds=1)}})
    assert (await db.c.find_one({"_id": 3}))["at"] == at.replace(microsecond=678_000) + timedelta(seconds=1)


async def test_in_process_fallback_yields_to_the_event_loop() -> None:
    """A read-then-write race must be able to interleave on the fallback as on a server."""
    db = InProcessMongoClient()["t"]
    await db.c.insert_one({"_id": 1, "n": 0})
    order: list[str] = []

    async def read_then_write(name: str) -> None:
        doc = await db.c.find_one({"_id": 1})
        order.append(f"{name} read")
        await db.c.update_one({"_id": 1}, {"$set": {"n": doc["n"] + 1}})
        order.append(f"{name} wrote")

    await asyncio.gather(read_then_write("a"), read_then_write("b"))
    assert order[:2] == ["a read", "b read"]  # both read before either wrote: the lost update shows
    assert (await db.c.find_one({"_id": 1}))["n"] == 1


async def test_single_document_writes_are_atomic_under_concurrency(mongo_client: Any, db_name: str) -> None:
    """MongoDB's guarantee that every compare-and-set, claim and counter here relies on. FerretDB 1.24 does
    not give it by itself (it reads, then writes in another transaction); the client's locks make it hold."""
    db = mongo_client[db_name]
    await db.t.insert_one({"_id": "x", "n": 0})
    cas = await asyncio.gather(*[db.t.update_one({"_id": "x", "owner": {"$exists": False}},
                                                 {"$set": {"owner": i}}) for i in range(20)])
    assert sum(r.modified_count for r in cas) == 1
    await asyncio.gather(*[db.t.update_one({"_id": "x"}, {"$inc": {"n": 1}}) for _ in range(30)])
    assert (await db.t.find_one({"_id": "x"}))["n"] == 30
    taken = await asyncio.gather(*[db.t.find_one_and_update({"_id": "x", "n": 30}, {"$set": {"n": -1}})
                                   for _ in range(10)])
    assert sum(1 for r in taken if r is not None) == 1


async def test_atomic_across_processes(mongodb_url: str | None, db_name: str, mongo_client: Any) -> None:
    """Replicas are separate processes: the file lock makes two processes' counters add up too."""
    if mongodb_url is None:
        pytest.skip("the in-process fallback has no other processes")
    import subprocess
    import sys

    await mongo_client[db_name].t.insert_one({"_id": "x", "n": 0})
    script = (
        "import asyncio, sys\n"
        "from clinishare_shared.mongo import open_client\n"
        "async def main():\n"
        "    c = open_client(sys.argv[1])\n"
        "    coll = c[sys.argv[2]].t\n"
        "    await asyncio.gather(*[coll.update_one({'_id': 'x'}, {'$inc': {'n': 1}}) for _ in range(40)])\n"
        "asyncio.run(main())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, mongodb_url, db_name]) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert (await mongo_client[db_name].t.find_one({"_id": "x"}))["n"] == 120


async def test_in_process_engine_reads_a_document_by_id_without_a_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like a server's primary key: an ``_id`` equality touches one document, whatever the collection's
    size, also with more conditions (checked on that document); every other filter still scans. Finds,
    updates and deletes by ``_id`` mean what they did."""
    from clinishare_shared.mongo import InProcessMongoClient

    coll = InProcessMongoClient()["db"]["docs"]
    await coll.insert_many([{"_id": f"d{i}", "n": i} for i in range(500)])
    tested = _count_documents_tested(monkeypatch)
    assert (await coll.find_one({"_id": "d7"}))["n"] == 7
    assert await coll.find_one({"_id": "missing"}) is None
    assert (await coll.update_one({"_id": "d8"}, {"$set": {"n": 80}})).modified_count == 1
    assert (await coll.find_one({"_id": "d8"}))["n"] == 80
    assert (await coll.delete_one({"_id": "d9"})).deleted_count == 1
    assert await coll.count_documents({"_id": "d9"}) == 0
    assert len(tested) <= 6, tested  # one document per call, not 500
    tested.clear()
    found = await coll.find({"_id": {"$in": ["d3", "missing", "d1", "d3"]}}).to_list()
    assert sorted(d["n"] for d in found) == [1, 3] and len(tested) <= 2, tested  # a set of ids: those only
    assert (await coll.update_many({"_id": {"$in": ["d1", "d2"]}}, {"$set": {"n": 0}})).modified_count == 2
    tested.clear()
    assert (await coll.find_one({"_id": "d7", "n": 7}))["n"] == 7  # more than _id: that document, checked
    assert await coll.find_one({"_id": "d7", "n": 8}) is None
    assert (await coll.update_one({"_id": "d7", "n": 8}, {"$set": {"n": 70}})).matched_count == 0
    assert (await coll.update_one({"_id": "d7", "n": {"$lt": 8}}, {"$set": {"n": 70}})).modified_count == 1
    assert (await coll.delete_one({"_id": "d7", "n": 7})).deleted_count == 0
    assert (await coll.find_one({"_id": "d7"}))["n"] == 70
    assert len(tested) <= 8, tested
    tested.clear()
    assert (await coll.find_one({"n": 70}))["_id"] == "d7"  # no _id: a scan, same answer
    assert len(tested) > 6


async def test_find_by_ids_reads_each_id_once_in_the_order_given_and_skips_missing_ones(any_db: Any) -> None:
    await any_db.docs.insert_many([{"_id": f"d{i}", "n": i, "secret": "x"} for i in range(5)])
    found = await find_by_ids(any_db.docs, ["d3", "missing", "d1", "d3", "d0"], {"n": 1})
    assert found == [{"_id": "d3", "n": 3}, {"_id": "d1", "n": 1}, {"_id": "d0", "n": 0}]
    assert await find_by_ids(any_db.docs, []) == []


async def test_many_ids_are_one_id_set_query_where_the_index_serves_it_and_bare_look_ups_on_ferretdb(
        any_db: Any, mongo_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """MongoDB and the in-process engine answer ``{"_id": {"$in": ids}}`` from the ``_id`` index, in one round
    trip per batch of ids; FerretDB's SQLite handler scans for it, so there each id is a bare look-up."""
    in_process = isinstance(any_db, mongo.InProcessDatabase)
    ferretdb = not in_process and "FerretDB" in await server_engine(mongo_client)
    assert await scans_id_sets(any_db.docs) is ferretdb
    await any_db.docs.insert_many([{"_id": f"d{i}", "n": i} for i in range(5)])
    monkeypatch.setattr(mongo, "ID_SET_BATCH", 2)
    spy = FilterSpy(any_db.docs)
    found = await find_by_ids(spy, ["d3", "missing", "d1", "d3", "d0"], {"n": 1})
    assert found == [{"_id": "d3", "n": 3}, {"_id": "d1", "n": 1}, {"_id": "d0", "n": 0}]
    await update_by_ids(spy, ["d4", "d2", "d4", "d0"], {"$inc": {"n": 10}})
    assert {d["_id"]: d["n"] async for d in any_db.docs.find({})} == {"d0": 10, "d1": 1, "d2": 12, "d3": 3, "d4": 14}
    if ferretdb:
        assert spy.calls[:4] == [("find_one", {"_id": i}) for i in ("d3", "missing", "d1", "d0")]
        assert [name for name, _ in spy.calls[4:]] == ["bulk_write"]  # three bare-_id statements, one bulk
    else:
        assert spy.calls == [("find", {"_id": {"$in": ["d3", "missing"]}}), ("find", {"_id": {"$in": ["d1", "d0"]}}),
                             ("update_many", {"_id": {"$in": ["d4", "d2"]}}), ("update_many", {"_id": {"$in": ["d0"]}})]
    with pytest.raises(ValueError):
        await find_by_ids(any_db.docs, ["d0"], {"_id": 0, "n": 1})


async def test_delete_by_ids_deletes_the_named_documents_by_bare_id_on_ferretdb(
        any_db: Any, mongo_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One ``$in`` per batch where the ``_id`` index serves it; on FerretDB (which scans for ``$in``) bulk
    writes of bare-``_id`` statements, at most ``BULK_STATEMENTS`` each."""
    ferretdb = not isinstance(any_db, mongo.InProcessDatabase) and "FerretDB" in await server_engine(mongo_client)
    await any_db.docs.insert_many([{"_id": f"d{i}"} for i in range(6)])
    monkeypatch.setattr(mongo, "ID_SET_BATCH", 2)
    monkeypatch.setattr(mongo, "BULK_STATEMENTS", 2)
    spy = FilterSpy(any_db.docs)
    await delete_by_ids(spy, ["d4", "missing", "d1", "d4", "d0"])
    assert sorted([d["_id"] async for d in any_db.docs.find({})]) == ["d2", "d3", "d5"]
    if ferretdb:
        assert spy.calls == [("bulk_write", [{"_id": "d4"}, {"_id": "missing"}]), ("bulk_write", [{"_id": "d1"}, {"_id": "d0"}])]
    else:
        assert spy.calls == [("delete_many", {"_id": {"$in": ["d4", "missing"]}}),
                             ("delete_many", {"_id": {"$in": ["d1", "d0"]}})]
    spy.calls.clear()
    await delete_by_ids(spy, [])  # nothing to do: no round trip
    assert spy.calls == []


async def test_find_by_id_reads_by_bare_id_and_checks_the_rest_as_a_query_would(any_db: Any) -> None:
    """``find_one({"_id": x, "owner_id": o})`` scanned the collection on FerretDB: ``find_by_id`` reads by the
    bare ``_id`` and checks the other fields as the query's equality does (a missing field is None)."""
    await any_db.docs.insert_many([{"_id": "d1", "owner_id": "alice", "deleted_at": None, "n": 1},
                                   {"_id": "d2", "owner_id": "bob", "flag": True}])
    spy = FilterSpy(any_db.docs)
    cases = [("d1", {"owner_id": "alice"}), ("d1", {"owner_id": "bob"}), ("d1", {"owner_id": "alice", "deleted_at": None}),
             ("d2", {"deleted_at": None}), ("d2", {"flag": True}), ("d1", {"n": 1.0}), ("missing", {}), ("d2", {})]
    for doc_id, where in cases:
        want = await any_db.docs.find_one({"_id": doc_id, **where})
        assert await find_by_id(spy, doc_id, where=where) == want, (doc_id, where)
    assert [f for _, f in spy.calls] == [{"_id": doc_id} for doc_id, _ in cases]
    # true is not 1 in BSON (as FerretDB answers; mongomock compares as Python does)
    assert await find_by_id(any_db.docs, "d2", where={"flag": 1}) is None
    assert await find_by_id(any_db.docs, "d1", where={"n": True}) is None
    assert await find_by_id(any_db.docs, "d1", {"n": 1, "owner_id": 1}, where={"owner_id": "alice"}) == \
        {"_id": "d1", "n": 1, "owner_id": "alice"}
    for bad in ({"owner_id": {"$ne": "x"}}, {"a.b": 1}, {"tags": ["x"]}):
        with pytest.raises(ValueError):
            matches({"_id": "d1"}, bad)


async def test_update_by_ids_updates_each_named_document_once_and_no_other(any_db: Any) -> None:
    await any_db.docs.insert_many([{"_id": f"d{i}", "n": 0} for i in range(4)])
    await update_by_ids(any_db.docs, ["d1", "d3", "d1", "missing"], {"$inc": {"n": 1}})
    assert {d["_id"]: d["n"] async for d in any_db.docs.find({})} == {"d0": 0, "d1": 1, "d2": 0, "d3": 1}
    await update_by_ids(any_db.docs, [], {"$inc": {"n": 1}})  # nothing to do: no round trip
    assert await any_db.docs.count_documents({"missing": {"$exists": True}}) == 0


async def test_update_each_applies_its_own_update_to_each_document(any_db: Any) -> None:
    await any_db.docs.insert_many([{"_id": f"d{i}", "tags": ["a", "b", "c"]} for i in range(3)])
    await update_each(any_db.docs, [("d0", {"$pullAll": {"tags": ["a"]}}), ("d2", {"$pullAll": {"tags": ["b", "c"]}}),
                                    ("missing", {"$set": {"x": 1}})])
    got = {d["_id"]: d["tags"] async for d in any_db.docs.find({})}
    assert got == {"d0": ["b", "c"], "d1": ["a", "b", "c"], "d2": ["a"]}
    assert await any_db.docs.count_documents({"_id": "missing"}) == 0
    await update_each(any_db.docs, [])  # nothing to do: no round trip


async def test_update_each_finishes_however_many_documents(any_db: Any) -> None:
    """FerretDB 1.24.2 never finishes one bulk of more than about 100 updates (each statement holds one of
    its 100 SQLite connections until the command ends): the updates go in small bulks."""
    await any_db.docs.insert_many([{"_id": f"d{i:03d}", "n": 0} for i in range(250)])
    await asyncio.wait_for(update_by_ids(any_db.docs, [f"d{i:03d}" for i in range(250)], {"$inc": {"n": 1}}), 60)
    assert await any_db.docs.count_documents({"n": 1}) == 250


async def test_in_process_engine_checks_a_unique_key_without_a_scan_and_answers_as_mongomock_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server looks a unique key up in its index; mongomock tested every document on every write, so an
    append-only collection (audit's chains) got slower with each entry. The in-process engine now looks
    the key up too, and still refuses exactly what a unique index refuses: a repeat, an update into a
    taken key (rolled back), a document that was there before the index; a deleted or moved key is free."""
    from clinishare_shared.mongo import InProcessMongoClient

    db = InProcessMongoClient()["db"]
    coll = db["entries"]
    await coll.insert_many([{"_id": f"e{i}", "chain": "c", "seq": i} for i in range(300)])  # before the index
    await coll.create_index([("chain", 1), ("seq", 1)], unique=True, name="position")
    tested = _count_documents_tested(monkeypatch)
    for i in range(300, 400):
        await coll.insert_one({"_id": f"e{i}", "chain": "c", "seq": i})
    assert tested == []  # a hundred inserts, not one document tested (it was 300..400 each)
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "x", "chain": "c", "seq": 5})  # written before the index existed
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "y", "chain": "c", "seq": 350})
    with pytest.raises(DuplicateKeyError):
        await coll.update_one({"_id": "e10"}, {"$set": {"seq": 11}})
    assert (await coll.find_one({"_id": "e10"}))["seq"] == 10  # rolled back
    await coll.update_one({"_id": "e12"}, {"$set": {"seq": 1012}})  # moved: 12 is free, 1012 taken
    await coll.insert_one({"_id": "z", "chain": "c", "seq": 12})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "w", "chain": "c", "seq": 1012})
    await coll.delete_one({"_id": "e20"})  # deleted: free again
    await coll.insert_one({"_id": "v", "chain": "c", "seq": 20})
    await coll.insert_one({"_id": "u", "chain": "other", "seq": 20})  # the whole key counts
    assert await coll.count_documents({}) == 402
    # dropped and created again: built anew from the documents, so a repeat is still caught
    await coll.drop_index("position")
    await coll.insert_one({"_id": "t", "chain": "c", "seq": 30_000})
    await coll.create_index([("chain", 1), ("seq", 1)], unique=True, name="position")
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "s", "chain": "c", "seq": 30_000})
    # sparse: documents without the field are not in the index
    await db["pins"].create_index("pin", unique=True, sparse=True, name="pin")
    await db["pins"].insert_many([{"_id": "a"}, {"_id": "b"}, {"_id": "c", "pin": "P"}])
    with pytest.raises(DuplicateKeyError):
        await db["pins"].insert_one({"_id": "d", "pin": "P"})


async def test_in_process_unique_keys_that_hold_arrays_get_mongomock_s_own_check() -> None:
    """An array in a unique key is one index entry per element on a server (and in mongomock): that
    index goes back to mongomock's check, so a key inside another document's array is still refused."""
    from clinishare_shared.mongo import InProcessMongoClient

    coll = InProcessMongoClient()["db"]["tags"]
    await coll.create_index("tag", unique=True, name="tag")
    await coll.insert_one({"_id": "a", "tag": "x"})
    await coll.insert_one({"_id": "b", "tag": ["y", "z"]})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "c", "tag": "y"})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "d", "tag": "x"})
    await coll.insert_one({"_id": "e", "tag": "w"})


def _count_documents_tested(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ``_id`` of every document mongomock tests a filter against from now on (a scan tests them all)."""
    import mongomock.filtering

    tested: list[Any] = []
    real = mongomock.filtering.filter_applies

    def counting(filter: Any, doc: Any) -> bool:
        tested.append(doc.get("_id"))
        return real(filter, doc)

    monkeypatch.setattr(mongomock.filtering, "filter_applies", counting)
    monkeypatch.setattr("mongomock.collection.filter_applies", counting)
    return tested


async def test_in_process_find_answers_as_mongomock_s_cursor_and_copies_only_what_it_returns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process ``find`` and ``find_one`` filter, sort, skip, limit and project as mongomock's cursor
    does (same documents, same values, same key order, aware dates with bson's utc) but copy only the
    documents they return: mongomock's cursor copied every match twice before it skipped and limited."""
    from bson.tz_util import utc

    coll = InProcessMongoClient()["db"]["charts"]
    at = datetime(2026, 3, 4, 5, 6, 7, 8000, tzinfo=UTC)
    await coll.insert_many([{"_id": f"c{i:03d}", "author": f"a{i % 3}", "n": i % 7, "at": at + timedelta(minutes=i),
                             "tags": ["x", {"deep": [at, i]}], "meta": {"v": i, "when": at}, "none": None}
                            for i in range(60)])
    filters: list[Any] = [None, {}, {"author": "a1"}, {"_id": "c005"}, {"_id": {"$in": ["c009", "c001", "zz"]}},
                          {"n": {"$gte": 3}, "author": {"$ne": "a2"}}, {"meta.v": {"$lt": 10}}, {"author": "none"},
                          {"at": {"$gte": at + timedelta(minutes=50, microseconds=1)}}, {"meta.when": at}]
    projections: list[Any] = [None, {}, [], ["n"], {"n": 1}, {"n": 1, "_id": 0}, {"tags": 0, "meta": 0}, {"_id": 0},
                              {"_id": 1}, {"n": True, "at": True}, {"meta": 0, "_id": 0}, {"meta.v": 1}]
    shapes: list[tuple[Any, int, int]] = [(None, 0, 0), ([("n", 1), ("_id", -1)], 0, 5), ([("at", -1)], 3, 4),
                                          ([("$natural", -1)], 0, 0), (None, 58, 0), (None, 0, -2)]
    for filter in filters:
        for projection in projections:
            for sort, skip, limit in shapes:
                ours = coll.find(filter, projection)
                theirs = coll._c.find(filter, projection)
                if sort:
                    ours, theirs = ours.sort(sort), theirs.sort(sort)
                ours, theirs = ours.skip(skip).limit(limit), theirs.skip(skip).limit(limit)
                got, want = await ours.to_list(), list(theirs)
                case = (filter, projection, sort, skip, limit)
                assert got == want, case
                assert [list(d) for d in got] == [list(d) for d in want], case  # key order too
                assert all(d["at"].tzinfo is utc for d in got if "at" in d), case
            one = await coll.find_one(filter, projection)
            assert one == coll._c.find_one(filter, projection), (filter, projection)
    assert await coll.find_one("c004", {"n": 1}) == {"n": 4, "_id": "c004"}  # a bare value is an _id
    # what a read returns is a copy: changing it changes nothing stored
    doc = await coll.find_one({"_id": "c001"})
    doc["tags"][1]["deep"].append("changed")
    doc["meta"]["v"] = -1
    assert await coll.find_one({"_id": "c001"}) == coll._c.find_one({"_id": "c001"})
    assert (await coll.find_one({"_id": "c001"}))["meta"]["v"] == 1
    # only what is returned is copied: two of sixty here, and one for a find_one many documents match
    copied: list[Any] = []
    real = mongo._read_copy

    def counting(value: Any, aware: bool) -> Any:
        if isinstance(value, dict) and "_id" in value:
            copied.append(value["_id"])
        return real(value, aware)

    monkeypatch.setattr(mongo, "_read_copy", counting)
    assert [d["_id"] for d in await coll.find({}).sort("_id", -1).limit(2).to_list()] == ["c059", "c058"]
    assert copied == ["c059", "c058"]
    copied.clear()
    assert (await coll.find_one({"author": "a2"}))["_id"] == "c002"
    assert copied == ["c002"]
    # an async for and to_list(length) hand each document on once, in order
    cursor = coll.find({"author": "a0"}, {"_id": 1}).sort("_id", 1)
    first = await cursor.to_list(2)
    rest = [d async for d in cursor]
    assert [d["_id"] for d in first + rest] == [f"c{i:03d}" for i in range(0, 60, 3)]


async def test_in_process_reads_copy_upserted_documents_in_the_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """mongomock stores a document an upsert created as an OrderedDict: a read copies it in its own pass
    (a plain dict with aware dates, as mongomock's cursor returns it), not through mongomock's two-step copy
    of every value (lookup documents are made by upserts, and their reads were mostly that copy)."""
    import mongomock.collection
    from bson.tz_util import utc

    coll = InProcessMongoClient()["db"]["sets"]
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    await coll.update_one({"_id": "k"}, {"$addToSet": {"grants": {"$each": [{"g": f"g{i}", "at": at, "in": {"x": [i]}}
                                                                            for i in range(5)]}}}, upsert=True)
    want = type(coll._c).find_one(coll._c, {"_id": "k"})  # mongomock's own read (its cursor)
    slow: list[Any] = []
    real = mongomock.collection._copy_field
    monkeypatch.setattr(mongomock.collection, "_copy_field",
                        lambda obj, container: slow.append(obj) or real(obj, container))
    for got in (await coll.find_one({"_id": "k"}), (await coll.find({"_id": {"$in": ["k"]}}).to_list())[0]):
        assert slow == []
        assert got == want and list(got) == list(want)
        assert type(got) is dict and all(type(g) is dict and g["at"].tzinfo is utc for g in got["grants"])
        got["grants"][0]["in"]["x"].append("changed")  # still a copy
    assert (await coll.find_one({"_id": "k"}))["grants"][0]["in"]["x"] == [0]


async def test_the_in_process_engine_is_named_also_behind_the_tests_yielding_wrapper() -> None:
    """Race tests wrap the client (``testing.yielding``); the in-process engine behind it has no server
    to ask ``buildInfo``, and services named it at start-up by asking, so they failed to start there."""
    from clinishare_shared.testing import yielding

    client = InProcessMongoClient()
    assert await server_engine(yielding(client)) == await server_engine(client) == InProcessMongoClient.engine


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (an OrderedDict is not a dict here, nor a tuple a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _containers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(c for v in value.values() for c in _containers(v))]
    if isinstance(value, list):
        return [value, *(c for v in value for c in _containers(v))]
    return []


def _stored_values() -> list[Any]:
    from collections import OrderedDict
    from datetime import timezone

    from bson import Decimal128, ObjectId, Regex, Timestamp
    from bson.son import SON

    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    return [
        {"a": 1, "b": [1, 2.5, "s", None, True, b"x", ObjectId("65a1b2c3d4e5f60718293a4b")], "c": {"d": at},
         "e": at.replace(tzinfo=None), "f": datetime(2026, 1, 1, 12, 0, 0, 999, tzinfo=timezone(timedelta(hours=2)))},
        OrderedDict([("x", OrderedDict([("y", [OrderedDict(z=1), {"w": [at]}])])), ("n", 0)]),
        (1, 2, [3, {"t": at}]), SON([("a", 1), ("b", {"c": at})]), [Decimal128("1.5"), Regex("^a"), Timestamp(5, 1)],
        {"outbox": [{"id": f"e{i}", "time": at, "data": {"ids": [f"x{i}"]}} for i in range(3)]}, True, 1, "s", None,
    ]


def test_in_process_writes_copy_and_store_values_as_mongomock_does() -> None:
    """The in-process engine's two replacements inside mongomock give what mongomock's own code gives, of the
    same types: the copy an update takes of the document (``copy.deepcopy`` there), and the walk that stores
    dates naive, in UTC, to the millisecond. Neither shares a dict or list with what it was given."""
    import copy

    InProcessMongoClient()  # installs them, once per process
    patch_dates = mongo._MONGOMOCK_OWN["patch_datetime_awareness_in_document"]
    from mongomock import collection as mongomock_collection, helpers

    assert helpers.patch_datetime_awareness_in_document is not patch_dates
    assert mongomock_collection.copy is mongo._StoredCopy
    for value in _stored_values():
        for ours, theirs in ((mongo._StoredCopy.deepcopy(value), copy.deepcopy(value)),
                             (helpers.patch_datetime_awareness_in_document(value), patch_dates(value))):
            assert _same(ours, theirs), (ours, theirs)
            given = {id(c) for c in _containers(value)}
            assert not given & {id(c) for c in _containers(ours)}, "a copy, not the stored containers"


async def test_in_process_find_and_modify_answers_as_mongomock_without_its_cursor_copies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """find_one_and_update / replace / delete read the document before (and, for AFTER, after) the write:
    through the engine's one-pass read now, not mongomock's cursor, and nothing deep-copies through the
    copy module on the way. Each answer equals plain mongomock's, key order included."""
    import copy

    import mongomock
    import mongomock.collection
    from mongomock import helpers
    from pymongo import ReturnDocument

    ours = InProcessMongoClient()["db"]["fam"]
    plain = mongomock.MongoClient(tz_aware=True)["db"]["fam"]  # mongomock's own reads (no per-collection shims)
    slow: list[Any] = []
    real_copy_field, real_aware, real_deepcopy = (mongomock.collection._copy_field,
                                                  helpers.make_datetime_timezone_aware_in_document, copy.deepcopy)
    at = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    AFTER, BEFORE = ReturnDocument.AFTER, ReturnDocument.BEFORE
    steps: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("find_one_and_update", ({"_id": "k"}, {"$addToSet": {"ids": {"$each": ["a", "b"]}}, "$inc": {"n": 2}}),
         {"upsert": True, "return_document": AFTER}),
        ("find_one_and_update", ({"_id": "k"}, {"$set": {"at": at, "in": {"x": [1, {"y": at}]}}, "$push": {"ids": "c"}}),
         {"return_document": BEFORE}),
        ("find_one_and_update", ({"_id": "k"}, {"$addToSet": {"ids": "a"}, "$inc": {"n": 1}}),
         {"projection": {"n": 1, "more": 1}, "return_document": AFTER}),
        ("find_one_and_update", ({"_id": "k"}, {"$max": {"more": 3}}), {"projection": {"ids": 0}, "return_document": AFTER}),
        ("find_one_and_update", ({"_id": "missing"}, {"$set": {"x": 1}}), {"return_document": AFTER}),
        ("find_one_and_update", ({"n": {"$gte": 3}}, {"$unset": {"in": ""}}), {"return_document": AFTER}),
        ("find_one_and_replace", ({"_id": "k"}, {"ids": ["z"], "at": at}), {"return_document": AFTER}),
        ("find_one_and_delete", ({"_id": "k"},), {}),
        ("find_one", ({"_id": "k"},), {}),
    ]
    for name, args, kwargs in steps:
        want = getattr(plain, name)(*args, **kwargs)
        monkeypatch.setattr(mongomock.collection, "_copy_field", lambda o, c: slow.append(o) or real_copy_field(o, c))
        monkeypatch.setattr(helpers, "make_datetime_timezone_aware_in_document",
                            lambda v: slow.append(v) or real_aware(v))
        monkeypatch.setattr(copy, "deepcopy", lambda v, memo=None: slow.append(v) or real_deepcopy(v, memo))
        got = await getattr(ours, name)(*args, **kwargs)
        monkeypatch.undo()
        assert slow == [], name
        assert got == want and (got is None or list(got) == list(want)), (name, got, want)
        assert _same(got, want), name


async def test_in_process_deletes_match_mongomocks_without_copying_what_they_delete(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """delete_one / delete_many find what they delete as the engine's reads do (mongomock read every match
    through its cursor, two copies each, for the ``_id``s): the same documents go, the same count answers."""
    import mongomock
    import mongomock.collection

    ours = InProcessMongoClient()["db"]["dels"]
    plain = mongomock.MongoClient(tz_aware=True)["db"]["dels"]
    at = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    docs = [{"_id": f"d{i}", "n": i, "at": at + timedelta(minutes=i), "tags": ["a", "b"][: i % 3]} for i in range(12)]
    plain.insert_many([dict(d) for d in docs])
    await ours.insert_many([dict(d) for d in docs])
    slow: list[Any] = []
    real_copy_field = mongomock.collection._copy_field
    for name, filter in [("delete_one", {"n": {"$gte": 5}}), ("delete_many", {"_id": {"$in": ["d1", "d2", "nope"]}}),
                         ("delete_one", {"_id": "d3"}), ("delete_many", {"at": {"$lt": at + timedelta(minutes=7)}}),
                         ("delete_one", {"_id": "gone"}), ("delete_many", {"tags": "b"}), ("delete_many", {})]:
        want = getattr(plain, name)(filter).deleted_count
        monkeypatch.setattr(mongomock.collection, "_copy_field", lambda o, c: slow.append(o) or real_copy_field(o, c))
        got = (await getattr(ours, name)(filter)).deleted_count
        monkeypatch.undo()
        assert slow == [] and got == want, (name, filter, got, want)
        assert await ours.find({}, {"_id": 1}).to_list() == list(plain.find({}, {"_id": 1})), (name, filter)


def test_equal_stored_judges_equalities_as_a_server_and_leaves_the_rest_to_it() -> None:
    at = datetime(2026, 3, 4, 5, 6, 7, 123_000, tzinfo=UTC)
    doc = {"_id": "d", "v": 3, "ratio": 0.5, "flag": True, "none": None, "name": "x", "at": at,
           "email": {"status": "sending"}, "tags": ["a"], "oid": ObjectId("65a0b1c2d3e4f50617283940")}
    judge = mongo.equal_stored
    assert judge(doc, {"v": 3, "name": "x", "email.status": "sending"}) is True
    assert judge(doc, {"v": 3.0}) is True  # 3 is 3.0
    assert judge(doc, {"v": 4}) is False and judge(doc, {"name": "y"}) is False
    assert judge(doc, {"flag": 1}) is False and judge(doc, {"v": True}) is False  # true is not 1
    assert judge(doc, {"flag": True}) is True
    assert judge(doc, {"missing": None, "none": None, "email.other": None, "name.deeper": None}) is True
    assert judge(doc, {"missing": "x"}) is False and judge(doc, {"v": None}) is False
    assert judge(doc, {"at": at.replace(microsecond=123_456)}) is True  # the same millisecond
    assert judge(doc, {"at": at.astimezone(timezone(timedelta(hours=-5)))}) is True  # the same instant
    assert judge(doc, {"at": at.replace(tzinfo=None)}) is True  # a naive date is UTC
    assert judge(doc, {"at": at + timedelta(milliseconds=1)}) is False
    assert judge(doc, {"oid": ObjectId("65a0b1c2d3e4f50617283940")}) is True
    assert judge(doc, {"oid": "65a0b1c2d3e4f50617283940"}) is False  # a string is not an ObjectId
    # what it cannot judge for certain is the server's: operators, arrays, documents, other kinds
    for unsure in ({"v": {"$lt": 4}}, {"$or": [{"v": 3}]}, {"tags": "a"}, {"tags.0": "a"}, {"email": {"status": "sending"}},
                   {"v": [3]}, {"name": b"x"}):
        assert judge(doc, unsure) is None, unsure
    assert judge({"_id": "d", "email": "plain"}, {"email.status": None}) is True  # no such path: missing


async def test_conditional_writes_by_id_answer_as_the_server_would(any_db: Any) -> None:
    """``{"_id": x, <equalities>}`` writes: on FerretDB served by bare ``_id`` (next test), the same answers
    everywhere."""
    c = any_db.cas
    await c.insert_many([{"_id": "a", "v": 1, "deleted_at": None, "email": {"status": "sending"}},
                         {"_id": "b", "v": 1}])
    assert (await c.update_one({"_id": "a", "v": 2}, {"$set": {"v": 3}})).matched_count == 0
    done = await c.update_one({"_id": "a", "v": 1, "deleted_at": None}, {"$set": {"v": 2}})
    assert (done.matched_count, done.modified_count) == (1, 1)
    assert (await c.update_one({"_id": "missing", "v": 1}, {"$set": {"v": 9}})).matched_count == 0
    assert await c.find_one({"_id": "missing"}) is None
    assert (await c.replace_one({"_id": "b", "v": 1}, {"v": 5})).modified_count == 1
    assert (await c.replace_one({"_id": "b", "v": 1}, {"v": 6})).matched_count == 0
    assert await c.find_one_and_update({"_id": "a", "email.status": "sent"}, {"$set": {"v": 0}}) is None
    after = await c.find_one_and_update({"_id": "a", "email.status": "sending"}, {"$set": {"email.status": "sent"}},
                                        return_document=ReturnDocument.AFTER)
    assert after == {"_id": "a", "v": 2, "deleted_at": None, "email": {"status": "sent"}}
    assert (await c.delete_one({"_id": "a", "v": 1})).deleted_count == 0
    assert (await c.delete_one({"_id": "a", "v": 2})).deleted_count == 1
    assert await c.find_one_and_delete({"_id": "b", "v": 6}) is None
    assert (await c.find_one_and_delete({"_id": "b", "v": 5}))["v"] == 5
    assert await c.count_documents({}) == 0
    # an upsert keeps the server's own answer: it inserts what the equalities name
    await c.update_one({"_id": "u", "kind": "x"}, {"$set": {"n": 1}}, upsert=True)
    assert await c.find_one({"_id": "u"}) == {"_id": "u", "kind": "x", "n": 1}
    # a compare-and-set has one winner however many race for it
    won = await asyncio.gather(*[c.update_one({"_id": "u", "n": 1}, {"$set": {"n": 2, "by": i}}) for i in range(20)])
    assert sum(r.modified_count for r in won) == 1


async def test_conditional_writes_by_id_are_bare_id_commands_on_ferretdb(mongodb_url: str | None, db_name: str) -> None:
    if not mongodb_url:
        pytest.skip("counts a real client's commands: needs a server (FerretDB under make test, or MONGODB_URL)")
    from pymongo import AsyncMongoClient

    from clinishare_shared import querystats

    stats = querystats.QueryStats()
    client = mongo.AtomicWritesClient(AsyncMongoClient(mongodb_url, event_listeners=[stats], tz_aware=True), mongodb_url)
    try:
        c = client[db_name].cas_cmds
        await c.insert_many([{"_id": f"d{i}", "v": 1} for i in range(5)])
        stats.rows.clear()
        await c.update_one({"_id": "d1", "v": 1}, {"$set": {"v": 2}})
        await c.update_one({"_id": "d2", "v": 7}, {"$set": {"v": 2}})  # no match: no write at all
        await c.delete_one({"_id": "d3", "v": 1})
        await c.find_one_and_update({"_id": "d4", "v": 1}, {"$set": {"v": 3}})
        used = [(k[2], k[3]) for k in stats.rows if k[1] == "cas_cmds"]
        ferretdb = await mongo.scans_id_sets(c)
        if ferretdb:  # every command names the document by bare _id: served from the index, no scan
            assert used and all(shape == '{"_id": "?"}' for _, shape in used), used
            assert sorted(cmd for cmd, _ in used if cmd != "find") == ["delete", "findAndModify", "update"]
        assert [d["v"] for d in await c.find({}).sort("_id", 1).to_list()] == [1, 2, 1, 3]
    finally:
        await client.close()
