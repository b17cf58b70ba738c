"""The database commands one charts request costs: ``python -m bench.roundtrips [--charts N]``.

Starts its own FerretDB (or uses ``MONGODB_URL``), serves the charts service on it in this process, seeds it
as the single-service bench does (``bench.servers.seed_charts``), then makes one of each request the bench
times (Charts Shared With You, reading a chart, creating a chart share) and prints, for each, every command
the service sent: collection, command name and the filter's shape (its keys, values elided). A command whose
filter is anything but a bare ``_id`` equality makes FerretDB's SQLite handler read the whole collection.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pymongo import monitoring

_SKIP = {"buildInfo", "hello", "ismaster", "isMaster", "ping", "endSessions", "getMore", "killCursors"}


def shape(value: Any) -> Any:
    """A filter with its values elided: the keys and operators that decide what the server does."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:2]] + (["..."] if len(value) > 2 else [])
    return "?"


def pushed_down(filter_: Any) -> bool:
    """Whether FerretDB 1.24's SQLite handler can serve this filter by its ``_id`` index."""
    return isinstance(filter_, dict) and set(filter_) == {"_id"} and isinstance(filter_["_id"], str)


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.on = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.on or event.command_name in _SKIP:
            return
        cmd = event.command
        coll = cmd.get(event.command_name)
        filters: list[Any] = []
        if event.command_name in ("find", "count", "delete", "findAndModify"):
            filters = [cmd.get("filter", cmd.get("query", {}))]
            if event.command_name == "delete":
                filters = [d.get("q") for d in cmd.get("deletes", [])]
        elif event.command_name == "update":
            filters = [u.get("q") for u in cmd.get("updates", [])]
        elif event.command_name == "aggregate":
            filters = [cmd.get("pipeline")]
        self.commands.append({"collection": coll, "command": event.command_name, "filters": filters,
                              "request_id": event.request_id, "ms": None})

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        for c in reversed(self.commands):
            if c["request_id"] == event.request_id:
                c["ms"] = event.duration_micros / 1000
                break

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


async def run(url: str, charts: int) -> dict[str, list[dict[str, Any]]]:
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

    rec = Recorder()
    client = AtomicWritesClient(AsyncMongoClient(url, tz_aware=True, uuidRepresentation="standard",
                                                 event_listeners=[rec]), url)
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
            await asyncio.sleep(0.5)  # let start-up work (relay sweep, consumer) finish outside the count
            for name, (method, path, headers, body) in requests.items():
                await http.request(method, path, headers=headers, json=body)  # warm
                rec.commands.clear()
                rec.on = True
                r = await http.request(method, path, headers=headers, json=body)
                await asyncio.sleep(0.3)  # the relay's pass after the write belongs to the request
                rec.on = False
                assert r.status_code in (200, 201), r.text
                out[name] = list(rec.commands)
    finally:
        await client.drop_database(db_name)
        await client.close()
        await bus.close()
    return out


async def _discard(event: Any) -> None:
    return None


def report(counted: dict[str, list[dict[str, Any]]]) -> None:
    for name, cmds in counted.items():
        scans = sum(1 for c in cmds if c["filters"] and not all(pushed_down(f) for f in c["filters"]))
        print(f"{name}: {len(cmds)} commands, {scans} not served by the _id index")
        for c in cmds:
            filters = "; ".join(str(shape(f)) for f in c["filters"])
            mark = "" if not c["filters"] or all(pushed_down(f) for f in c["filters"]) else "  <- scans"
            took = f"{c['ms']:7.2f} ms" if c["ms"] is not None else "       ?  "
            print(f"    {took} {c['collection']:<22} {c['command']:<14} {filters}{mark}")


async def main(argv: list[str] | None = None) -> int:
    import os

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
