"""Which of the hot queries are index-backed on MongoDB: the query planner's winning plan for each, asked
with ``explain``. Runs only where MONGODB_URL points at a real MongoDB: FerretDB's SQLite handler pushes
down only ``_id`` equality (everything else is a scan there, whatever the indexes), and the in-process
engine has no planner at all."""

from __future__ import annotations

import os
from typing import Any

import pytest

from clinishare_charts.store import ChartStore, GRANTS, CHARTS
from clinishare_shared.consumer import PROCESSED, IdempotentConsumer
from clinishare_shared.mongo import open_client
from clinishare_shared.outbox import OUTBOX, OutboxRelay
from clinishare_shared.bus.memory import InMemoryBus


def _stages(plan: Any) -> list[str]:
    out = []
    if isinstance(plan, dict):
        if "stage" in plan:
            out.append(plan["stage"])
        for v in plan.values():
            out.extend(_stages(v))
    elif isinstance(plan, list):
        for v in plan:
            out.extend(_stages(v))
    return out


async def _real_mongodb() -> Any:
    url = os.environ.get("MONGODB_URL")
    if not url:
        pytest.skip("MONGODB_URL is not set: explain needs a real MongoDB (FerretDB and the in-process engine do not plan with MongoDB indexes)")
    client = open_client(url)
    info = await client.admin.command("buildInfo")
    if "ferretdb" in str(info).lower():
        await client.close()
        pytest.skip("MONGODB_URL is FerretDB: its SQLite handler pushes down only _id equality, so explain "
                    "says nothing about MongoDB's indexes")
    return client


async def test_hot_queries_are_index_backed_on_mongodb(unique: str) -> None:
    client = await _real_mongodb()
    db = client[f"explain_{unique}"]
    try:
        store = ChartStore(db)
        await store.ensure_indexes()
        relay = OutboxRelay(db, ChartStore.outbox_collections, InMemoryBus())
        await relay.ensure_indexes()
        await IdempotentConsumer(db, service="explain", handlers={}).ensure_indexes()
        await db[CHARTS].insert_one({"_id": "c0", "author_id": "a", "patient_id": "p"})
        await db[GRANTS].insert_one({"_id": "g0", "owner_id": "a", "practitioner_ids": ["v"], "office_ids": [],
                                     "revoked_at": None})
        queries: dict[str, tuple[str, dict[str, Any], dict[str, int] | None]] = {
            "grants reaching a viewer": (GRANTS, {"$or": [{"practitioner_ids": "v"}, {"office_ids": {"$in": ["o"]}}],
                                                  "revoked_at": None}, None),
            "charts shared with a viewer (newest first)": (CHARTS, {"$or": [{"author_id": {"$in": ["a", "b"]}},
                                                                           {"author_id": "c", "patient_id": {"$in": ["p"]}}]},
                                                           {"_id": -1}),
            "own charts (newest first)": (CHARTS, {"author_id": "a"}, {"_id": -1}),
            "a chart by id": (CHARTS, {"_id": "c0"}, None),
            "own grants (newest first)": (GRANTS, {"owner_id": "a", "revoked_at": None}, {"_id": -1}),
            "outbox: pending documents (sweep)": (GRANTS, {f"{OUTBOX}.id": {"$exists": True}}, {"_id": 1}),
            "outbox: the document a write staged": (GRANTS, {"_id": "g0", f"{OUTBOX}.id": {"$exists": True}}, None),
            "consumer: was this event processed": (PROCESSED, {"_id": "e1"}, None),
        }
        report = []
        for name, (coll, query, sort) in queries.items():
            cmd: dict[str, Any] = {"find": coll, "filter": query, "limit": 51}
            if sort:
                cmd["sort"] = sort
            plan = await db.command({"explain": cmd, "verbosity": "queryPlanner"})
            stages = _stages(plan["queryPlanner"]["winningPlan"])
            report.append((name, stages))
            print(f"{name}: {' <- '.join(stages)}")
            assert "COLLSCAN" not in stages, (name, stages)
    finally:
        await client.drop_database(f"explain_{unique}")
        await client.close()
