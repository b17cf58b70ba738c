from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from clinishare_shared.mongo import InProcessDatabase, InProcessMongoClient, engine_name, new_id, open_client, pull_exact


def test_open_client_and_ids() -> None:
    assert isinstance(open_client(None), InProcessMongoClient)
    assert isinstance(open_client("inprocess"), InProcessMongoClient)
    assert "mongomock" in engine_name(open_client(None))
    ids = [new_id() for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50 and all(len(i) == 24 for i in ids)


async def test_the_calls_the_stores_use(db: Any) -> None:
    c = db["items"]
    assert db.items.name == "items"
    await c.create_index([("owner", ASCENDING), ("_id", DESCENDING)])
    await c.insert_many([{"_id": f"{i:02d}", "owner": "a" if i % 2 else "b", "n": i, "tags": []} for i in range(10)])
    docs = await c.find({"owner": "a"}).sort("_id", -1).limit(3).to_list()
    assert [d["_id"] for d in docs] == ["09", "07", "05"]
    assert [d["_id"] async for d in c.find({"n": {"$lt": 3}}, {"_id": 1}).sort([("n", 1)])] == ["00", "01", "02"]
    assert len(await c.find().to_list(4)) == 4
    assert [d["_id"] for d in await c.find().sort("n", 1).skip(8).to_list()] == ["08", "09"]
    assert await c.count_documents({"owner": "b"}) == 5
    res = await c.update_one({"_id": "00"}, {"$push": {"tags": {"$each": ["x", "y", "z"]}}})
    assert res.matched_count == 1 and res.modified_count == 1
    await c.update_one({"_id": "00"}, pull_exact("tags", "y"))
    await c.update_one({"_id": "00"}, {"$push": {"objs": {"$each": [{"id": 1}, {"id": 2}]}}})
    await c.update_one({"_id": "00"}, pull_exact("objs", {"id": 1}))
    doc = await c.find_one({"_id": "00"})
    assert doc["tags"] == ["x", "z"] and doc["objs"] == [{"id": 2}]
    after = await c.find_one_and_update({"_id": "01"}, {"$inc": {"n": 10}}, return_document=ReturnDocument.AFTER)
    assert after["n"] == 11
    before = await c.find_one_and_update({"_id": "01"}, {"$set": {"n": 0}})
    assert before["n"] == 11
    assert await c.find_one_and_update({"_id": "zz"}, {"$set": {"n": 0}}) is None
    up = await c.update_one({"_id": "new"}, {"$setOnInsert": {"n": 99}}, upsert=True)
    assert up.upserted_id == "new"
    many = await c.update_many({"owner": "b"}, {"$set": {"flag": True}})
    assert many.modified_count == 5
    cursor = await c.aggregate([{"$match": {"owner": {"$in": ["a", "b"]}}},
                                {"$group": {"_id": "$owner", "total": {"$sum": 1}}}, {"$sort": {"_id": 1}}])
    assert await cursor.to_list() == [{"_id": "a", "total": 5}, {"_id": "b", "total": 5}]
    assert sorted(await c.distinct("owner")) == ["a", "b"]
    assert (await c.delete_one({"_id": "new"})).deleted_count == 1
    assert (await c.delete_many({"owner": "a"})).deleted_count == 5
    assert "items" in await db.list_collection_names()
    assert await db.command("ping") == {"ok": 1.0}
    if isinstance(db, InProcessDatabase):
        with pytest.raises(AttributeError):
            c.watch  # not adapted by the fallback: fails loudly


async def test_duplicate_key_on_unique_index(db: Any) -> None:
    c = db["accounts"]
    await c.create_index("email", unique=True)
    await c.insert_one({"_id": "a", "email": "x@y"})
    with pytest.raises(DuplicateKeyError):
        await c.insert_one({"_id": "b", "email": "x@y"})
    with pytest.raises(DuplicateKeyError):
        await c.insert_one({"_id": "a", "email": "other"})
    await c.insert_one({"_id": "c", "email": "z@y"})
    with pytest.raises(DuplicateKeyError):
        await c.update_one({"_id": "c"}, {"$set": {"email": "x@y"}})


async def test_datetimes_come_back_tz_aware(db: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    await db.t.insert_one({"_id": 1, "at": now})
    doc = await db.t.find_one({"_id": 1})
    assert doc["at"] == now and doc["at"].tzinfo is not None


async def test_documents_are_copies(db: Any) -> None:
    doc = {"_id": 1, "a": [1]}
    await db.t.insert_one(doc)
    found = await db.t.find_one({"_id": 1})
    found["a"].append(2)
    assert (await db.t.find_one({"_id": 1}))["a"] == [1]


async def test_drop_database(mongo_client: Any, db_name: str) -> None:
    await mongo_client[db_name].t.insert_one({"_id": 1})
    await mongo_client.drop_database(db_name)
    assert await mongo_client[db_name].t.count_documents({}) == 0
