"""Our FerretDB launcher (tools/ferretdb) makes FerretDB's `_id` lookups index-backed, and the Python
launcher asks SQLite for WAL with synchronous=NORMAL.

FerretDB 1.24.2's SQLite backend queries `_ferretdb_sjson->'$._id'` but indexes `_ferretdb_sjson->"_id"`,
so without the launcher's extra index every `_id` find/update/delete scans the collection (SQLite matches
expression indexes by their text). FerretDB's `explain` shows SQLite's plan for a connection it opens
after the index exists (its pooled connections keep planning EXPLAIN with the schema they first read,
while their real statements re-prepare on the schema change), so a running server is checked by asking
SQLite itself for the plan of FerretDB's query text, and a restarted one through FerretDB's `explain`.
"""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from clinishare_shared import ferretdb
from clinishare_shared.testing import wait_for


def _binary() -> Path:
    binary = ferretdb.find_binary()
    if binary is None:
        pytest.skip("no FerretDB binary (make ferretdb needs Go): the launcher under test is that binary")
    return binary


async def _plan(client: Any, db: str, coll: str, _id: str) -> str:
    out = await client[db].command("explain", {"find": coll, "filter": {"_id": _id}, "limit": 1})
    return " ".join(out["queryPlanner"].get("Plan", []))


async def test_a_new_collection_gets_its_id_lookups_index_backed() -> None:
    data = Path(tempfile.mkdtemp(prefix="ferretdb-idindex-"))
    with ferretdb.FerretDB(data, binary=_binary()) as server:
        client: Any = AsyncMongoClient(server.url)
        try:
            coll = client.idx.docs
            await coll.insert_many([{"_id": f"d{i}", "n": i} for i in range(50)])
            # polled until the plan of FerretDB's own lookup names our index
            plan = await wait_for(lambda: _sqlite_plan(data / "idx.sqlite", "docs"), timeout=15,
                                  message="the _id lookup to use the launcher's index")
            assert "SCAN" not in plan, plan
            # the writes that look up by _id are still right with the extra index
            assert (await coll.find_one({"_id": "d7"}))["n"] == 7
            assert (await coll.update_one({"_id": "d7"}, {"$set": {"n": 70}})).modified_count == 1
            assert (await coll.find_one({"_id": "d7"}))["n"] == 70
            assert (await coll.delete_one({"_id": "d8"})).deleted_count == 1
            assert await coll.find_one({"_id": "d8"}) is None
            assert await coll.count_documents({}) == 49
            # FerretDB does not see the index as one of the collection's: it lists only its own
            assert [i["name"] for i in await (await coll.list_indexes()).to_list()] == ["_id_"]
            # a collection created later in a database that keeps changing (the watcher backs off) too
            for i in range(20):
                await coll.update_one({"_id": "d7"}, {"$inc": {"n": 1}})
            await client.idx.later.insert_one({"_id": "d7"})
            await wait_for(lambda: _sqlite_plan(data / "idx.sqlite", "later"), timeout=15,
                           message="the later collection's index")
        finally:
            await client.close()


def _sqlite_plan(file: Path, collection: str) -> str | None:
    """SQLite's plan for the statement FerretDB runs for ``find({"_id": x})`` (sqlite.collection.Query)."""
    with closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True)) as con:
        (table,) = con.execute("SELECT table_name FROM _ferretdb_collections WHERE name = ?", (collection,)).fetchone()
        rows = con.execute(f"EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM \"{table}\" "
                           "WHERE _ferretdb_sjson->'$._id' = ?", ('"d7"',)).fetchall()
    plan = " ".join(str(r[-1]) for r in rows)
    return plan if "USING INDEX" in plan and "__id_path" in plan else None


async def test_a_collection_already_on_disk_is_indexed_at_start() -> None:
    data = Path(tempfile.mkdtemp(prefix="ferretdb-idindex-"))
    binary = _binary()
    with ferretdb.FerretDB(data, binary=binary) as server:
        client: Any = AsyncMongoClient(server.url)
        await client.old.docs.insert_many([{"_id": f"d{i}"} for i in range(20)])
        await wait_for(lambda: _sqlite_plan(data / "old.sqlite", "docs"), timeout=15, message="the index")
        await client.close()
    # a database written before the launcher made this index
    with closing(sqlite3.connect(data / "old.sqlite")) as con:
        (name,) = con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%\\_\\_id\\_path' "
                              "ESCAPE '\\'").fetchone()
        con.execute(f'DROP INDEX "{name}"')
        con.commit()
    with ferretdb.FerretDB(data, binary=binary) as server:
        client = AsyncMongoClient(server.url)
        try:
            plan = await _plan(client, "old", "docs", "d1")  # at once: indexed before FerretDB served anything
            assert "USING INDEX" in plan and "__id_path" in plan, plan
        finally:
            await client.close()


def test_the_launcher_asks_for_synchronous_normal_besides_ferretdbs_defaults() -> None:
    server = ferretdb.FerretDB(Path("/nonexistent/data"), port=1)
    assert server.sqlite_url == "file:/nonexistent/data/?_pragma=synchronous(normal)"
    server.sqlite_query = ""
    assert server.sqlite_url == "file:/nonexistent/data/"
