"""The database commands one charts request costs: ``python -m bench.roundtrips [--charts N]``.

Starts its own FerretDB (or uses ``MONGODB_URL``), serves the charts service on it in this process, seeds it
as the single-service bench does (``bench.servers.seed_charts``), then makes one of each request the bench
times (Charts Shared With You, reading a chart, creating a chart share) and prints, for each, the commands
it sent (the outbox relay's pass after a write included), counted by shape with ``querystats`` (collection,
command, filter shape, time), marking those FerretDB's SQLite handler answers by reading the whole
collection. ``bench --query-stats`` gives the same table for whole bench runs of the five processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from clinishare_shared import querystats


def rows_of(stats: querystats.QueryStats) -> list[dict[str, Any]]:
    """What ``stats`` counted, as ``querystats.load`` gives it (each row with ``pushed_down``)."""
    with tempfile.TemporaryDirectory(prefix="roundtrips-") as tmp:
        stats.dump(tmp)
        return querystats.load(tmp)


async def run(url: str, charts: int) -> dict[str, list[dict[str, Any]]]:
    """One listing, one read and one share creation on a charts service seeded with ``charts`` charts:
    request -> its commands (rows of ``querystats``)."""
    import httpx
    from pymongo import AsyncMongoClient

    from bench.servers import seed_charts
    from clinishare_charts.app import create_app
    from clinishare_charts.settings import ChartsSettings
    from clinishare_shared.auth import StaticKeyProvider, TokenSigner
    from clinishare_shared.bus.memory import InMemoryBus
    from clinishare_shared.directory import StaticDirectory
    from clinishare_shared.mongo import AtomicWritesClient
    from clinishare_shared.testing import LiveServer

    stats = querystats.QueryStats()
    client = AtomicWritesClient(AsyncMongoClient(url, tz_aware=True, uuidRepresentation="standard",
                                                 event_listeners=[stats]), url)
    signer = TokenSigner.generate()
    bus = InMemoryBus()
    await bus.start()
    await bus.subscribe("roundtrips", ["charts.#"], _discard)
    db_name = f"roundtrips_{uuid.uuid4().hex[:8]}"
    app = create_app(ChartsSettings(mongodb_database=db_name), bus=bus, mongo_client=client,
                     keys=StaticKeyProvider(signer.jwks()), directory=StaticDirectory())
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            info = await seed_charts(app, charts, signer)
            viewer = {"Authorization": f"Bearer {info['viewer_token']}"}
            owner = {"Authorization": f"Bearer {info['owner_token']}"}
            share = {"rule": "chart", "chart_id": info["owner_chart"], "practitioner_ids": [info["viewer"]],
                     "office_ids": [], "patient_consent": True}
            requests = {
                "list": ("GET", "/v1/charts/shared-with-me", viewer, None),
                "read": ("GET", f"/v1/charts/{info['read_chart']}", viewer, None),
                "create_share": ("POST", "/v1/chart-shares", owner, share),
            }
            await asyncio.sleep(0.5)  # start-up work (relay sweep, consumer) done outside the count
            for name, (method, path, headers, body) in requests.items():
                await http.request(method, path, headers=headers, json=body)  # warm
                await asyncio.sleep(0.3)
                stats.rows.clear()
                r = await http.request(method, path, headers=headers, json=body)
                await asyncio.sleep(0.3)  # the relay's pass after the write belongs to the request
                assert r.status_code in (200, 201), r.text
                out[name] = rows_of(stats)
    finally:
        await client.drop_database(db_name)
        await client.close()
        await bus.close()
    return out


async def _discard(event: Any) -> None:
    return None


def report(counted: dict[str, list[dict[str, Any]]]) -> None:
    for name, rows in counted.items():
        calls = sum(r["count"] for r in rows)
        scans = sum(r["count"] for r in rows if not r["pushed_down"])
        print(f"{name}: {calls} commands, {scans} not served by the _id index on FerretDB's SQLite handler")
        print(querystats.table(rows))


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.roundtrips")
    parser.add_argument("--charts", type=int, default=1000)
    args = parser.parse_args(argv)
    from clinishare_shared import ferretdb

    url = os.environ.get("MONGODB_URL")
    server = None
    if not url:
        server = ferretdb.FerretDB(Path(tempfile.mkdtemp(prefix="roundtrips-ferretdb-"))).start()
        url = server.url
    try:
        report(await run(url, args.charts))
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
