"""``MONGO_QUERY_STATS``: the bench's count of database commands by filter shape. No value reaches it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from clinishare_shared import querystats
from clinishare_shared.mongo import find_by_ids


def test_a_shape_keeps_fields_and_operators_and_drops_every_value() -> None:
    f = {"_id": {"$in": ["a", "b"]}, "email": "ann@example.org", "$or": [{"n": 1}, {"m": {"$lte": 2}}]}
    assert querystats.shape(f) == {"_id": {"$in": "[2]"}, "email": "?", "$or": [{"n": "?"}, {"m": {"$lte": "?"}}]}
    assert "ann" not in json.dumps(querystats.shape(f))


@pytest.fixture
async def counted(mongodb_url: str | None, db_name: str) -> AsyncIterator[tuple[querystats.QueryStats, Any]]:
    """A QueryStats and a database of a client that reports to it."""
    if not mongodb_url:
        pytest.skip("counts a real client's commands: needs a server (FerretDB under make test, or MONGODB_URL)")
    stats = querystats.QueryStats()
    client: Any = AsyncMongoClient(mongodb_url, event_listeners=[stats])
    yield stats, client[db_name]
    await client.close()


async def test_commands_are_counted_by_shape_and_written_without_values(counted: Any, tmp_path: Path) -> None:
    stats, db = counted
    coll = db["people"]
    await coll.insert_one({"_id": "p1", "email": "ann@example.org"})
    await find_by_ids(coll, ["p1", "p2"])
    await coll.find_one({"email": "ann@example.org"})
    await coll.update_one({"_id": "p1"}, {"$set": {"email": "bob@example.org"}})
    path = stats.dump(str(tmp_path))
    text = path.read_text()
    assert "example.org" not in text and "p1" not in text
    rows = {(r["collection"], r["command"], r["filter"]): r for r in json.loads(text) if r["collection"] == "people"}
    assert rows[("people", "find", '{"_id": "?"}')]["count"] == 2
    assert rows[("people", "find", '{"_id": "?"}')]["pushed_down"] is True
    assert rows[("people", "find", '{"email": "?"}')]["pushed_down"] is False
    assert rows[("people", "update", '{"_id": "?"}')]["pushed_down"] is True
    assert "people" in querystats.table(json.loads(text))


async def test_failed_commands_and_cursors_left_open_are_counted_apart(counted: Any, tmp_path: Path) -> None:
    stats, db = counted
    coll = db["things"]
    await coll.insert_many([{"_id": i} for i in range(5)])
    with pytest.raises(Exception):
        await coll.find({"a": {"$bogus": 1}}).to_list()  # the server refuses the command
    cursor = coll.find({}, batch_size=2)
    await cursor.next()  # the first batch of 2: the server keeps the rest behind an open cursor
    await cursor.close()
    rows = json.loads(stats.dump(str(tmp_path)).read_text())
    failed = [r for r in rows if r["collection"] == "things" and r["command"].startswith("find failed")]
    assert len(failed) == 1 and failed[0]["count"] == 1 and failed[0]["filter"] == '{"a": {"$bogus": "?"}}'

    finds = [r for r in rows if r["collection"] == "things" and r["command"] == "find"]
    assert len(finds) == 1 and finds[0]["filter"] == "{}" and finds[0]["cursors_left_open"] == 1
