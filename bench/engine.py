"""The engine's own cost: a bare ``_id`` find_one, an insert and an ``_id`` update at a given collection size,
through the client the services use (``open_client``: against FerretDB its read-modify-write lock) and
through the bare PyMongo client, so the lock's share shows beside the server's.

``python -m bench.engine [--sizes 1000 100000] [--sqlite-query '_pragma=...']`` starts its own FerretDB
(the launcher's defaults unless ``--sqlite-query`` replaces the query of its ``--sqlite-url``) and prints
one line per operation and size; ``make bench`` runs the same through ``engine_costs``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

OPS = ("find_one by _id", "insert_one", "update_one by _id")


async def measure(url: str | None, size: int, *, repeat: int = 200) -> dict[str, dict[str, float]]:
    """Median and p99 (ms) of each operation at ``size`` documents, through ``open_client`` ("client") and,
    on a server, through the bare PyMongo client ("bare")."""
    from pymongo import AsyncMongoClient

    from clinishare_shared.mongo import open_client

    client = open_client(url)
    bare = AsyncMongoClient(url, tz_aware=True) if url else None
    name = f"bench_engine_{uuid.uuid4().hex[:8]}"
    out: dict[str, dict[str, float]] = {}
    try:
        coll = client[name]["docs"]
        docs = [{"_id": f"{i:024x}", "owner_id": f"o{i % 100}", "rule": "all", "practitioner_ids": ["v"],
                 "body": "seeded for the benchmark " * 8, "n": 0} for i in range(size)]
        for i in range(0, size, 5000):
            await coll.insert_many(docs[i:i + 5000])
        if url:
            await asyncio.sleep(0.5)  # our FerretDB launcher indexes a new collection's _id within 200 ms
        clients = {"client": coll}
        if bare is not None:
            clients["bare"] = bare[name]["docs"]
        ids = [f"{(i * 7919) % size:024x}" for i in range(repeat)]
        for c in clients.values():
            await c.find_one({"_id": ids[0]})  # connection warm
        runs = {
            "find_one by _id": lambda c, label, i: c.find_one({"_id": ids[i]}),
            "insert_one": lambda c, label, i: c.insert_one({"_id": f"new-{label}-{i}", "n": 0}),
            "update_one by _id": lambda c, label, i: c.update_one({"_id": ids[i]}, {"$inc": {"n": 1}}),
        }
        for op, fn in runs.items():
            took: dict[str, list[float]] = {label: [] for label in clients}
            for i in range(repeat):  # interleaved, so the machine's drift hits both clients alike
                for label, c in clients.items():
                    t0 = time.perf_counter()
                    await fn(c, label, i)
                    took[label].append((time.perf_counter() - t0) * 1000)
            for label, xs in took.items():
                xs.sort()
                out[f"{op} ({label})"] = {"p50": statistics.median(xs), "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))]}
    finally:
        await client.drop_database(name)
        await client.close()
        if bare is not None:
            await bare.close()
    return out


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--sqlite-query", default=None, help="replace the launcher's SQLite URL query")
    args = parser.parse_args(argv)
    from clinishare_shared import ferretdb

    data = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    server = ferretdb.FerretDB(data)
    if args.sqlite_query is not None:
        server.sqlite_query = args.sqlite_query
    server.start()
    try:
        print(f"engine {ferretdb.LABEL}, sqlite url {server.sqlite_url}", flush=True)
        for size in args.sizes:
            for op, fig in (await measure(server.url, size, repeat=args.repeat)).items():
                print(f"{size:>7} docs  {op:<28} p50 {fig['p50']:7.2f} ms  p99 {fig['p99']:7.2f} ms", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
