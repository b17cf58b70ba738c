"""Server processes for the single-service benchmarks, served exactly as a service is
(``clinishare_shared.serve.run``: same uvicorn, same loop and parser, same logging).

``python -m bench.servers bare PORT``: a bare FastAPI endpoint, the baseline every ratio divides by.
``python -m bench.servers upstream PORT``: the bare endpoint at a service's path (``/v1/charts/{id}``), for
the gateway's overhead; ``python -m bench.servers gateway PORT UPSTREAM_URL``: the gateway with every
service at UPSTREAM_URL.
``python -m bench.servers charts PORT CHARTS INFO_FILE``: the charts service on the bench's engine
(``MONGODB_URL``, else the in-process one), seeded with CHARTS charts before it accepts requests (and
``BENCH_EXTRA_GRANTS`` more grants reaching the viewer, each on a chart of its own); the ids and tokens the
client needs are written to INFO_FILE once it is ready. It also serves the bench's two
floor endpoints (``bench.floor``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from clinishare_shared.mongo import new_id
from clinishare_shared.settings import ServiceSettings

AUTHORS = 100  # charts are spread over this many authors; the viewer holds "all" grants from ten of them
SHARED_FROM = 10
# the upstream's wait before it answers (seconds; bench.__main__.gateway_overhead's second line)
DELAY = float(os.environ.get("BENCH_UPSTREAM_DELAY", "0"))


def bare_items() -> list[dict[str, Any]]:
    return [{"id": new_id(), "title": f"item {i}", "created_at": datetime.now(UTC).isoformat()} for i in range(20)]


def bare_app() -> FastAPI:
    app = FastAPI()
    items = bare_items()

    @app.get("/bare")
    async def bare() -> dict[str, Any]:
        return {"items": items, "next_cursor": None}

    @app.post("/bare", status_code=201)
    async def bare_post(body: dict[str, Any]) -> dict[str, Any]:
        return {"id": new_id(), **body}

    return app


def upstream_app() -> FastAPI:
    """A bare endpoint where the gateway forwards a chart read, so the gateway's cost is all that differs."""
    app = FastAPI()
    item = {"id": new_id(), "title": "chart", "body": "seeded for the benchmark " * 8,
            "created_at": datetime.now(UTC).isoformat(), "notes": []}

    @app.get("/v1/charts/{chart_id}")
    async def read(chart_id: str) -> dict[str, Any]:
        if DELAY:
            await asyncio.sleep(DELAY)
        return {**item, "id": chart_id}

    return app


async def seed_charts(app: FastAPI, charts: int, signer: Any) -> dict[str, Any]:
    """CHARTS charts over AUTHORS authors; the viewer V holds "all" grants from SHARED_FROM of them and is
    on their sharing lists (connections in the projection), as on the first author O's, who shares with V."""
    from clinishare_shared.events import ConnectionCreated, make_event
    from clinishare_shared.outbox import OUTBOX

    store = app.state.store
    projection = app.state.projection
    authors = [new_id() for _ in range(AUTHORS)]
    viewer = new_id()
    owner = authors[0]
    now = datetime.now(UTC)
    batch: list[dict[str, Any]] = []
    first_chart: dict[str, str] = {}
    for i in range(charts):
        author = authors[i % AUTHORS]
        doc = {"_id": new_id(), "author_id": author, "patient_id": f"p{i % 1000:04d}", "patient_name": None,
               "title": f"chart {i}", "body": "seeded for the benchmark " * 8, "created_at": now, "updated_at": now}
        first_chart.setdefault(author, doc["_id"])
        batch.append(doc)
        if len(batch) >= 5000:
            await store.charts.insert_many(batch)
            batch = []
    if batch:
        await store.charts.insert_many(batch)
    grants = [{"_id": new_id(), "owner_id": a, "rule": "all", "chart_id": None, "patient_id": None,
               "practitioner_ids": [viewer], "office_ids": [], "patient_consent": True, "consent_attested_by": a,
               "consent_attested_at": now, "created_at": now, "revoked_at": None} for a in authors[1:SHARED_FROM + 1]]
    # more grants reaching the viewer, each on its own chart of an author whose charts are not all shared
    extra = int(os.environ.get("BENCH_EXTRA_GRANTS", "0"))
    others = [d for d in (await store.charts.find({"author_id": {"$in": authors[SHARED_FROM + 1:]}}, {"author_id": 1})
                          .to_list())][:extra]
    grants += [{"_id": new_id(), "owner_id": d["author_id"], "rule": "chart", "chart_id": d["_id"], "patient_id": None,
                "practitioner_ids": [viewer], "office_ids": [], "patient_consent": True,
                "consent_attested_by": d["author_id"], "consent_attested_at": now, "created_at": now,
                "revoked_at": None} for d in others]
    await store.grants.insert_many(grants)
    read_chart = first_chart[authors[1]]
    for n in range(3):
        await store.notes.insert_one({"_id": new_id(), "chart_id": read_chart, "author_id": viewer,
                                      "text": f"note {n}", "created_at": now})
    build = getattr(store, "build_lookups", None)  # written around the store: list them where it looks
    if build is not None:
        await build()
    for author in authors if others else authors[:SHARED_FROM + 1]:  # only recipients on the sharer's list
        await projection.handlers[ConnectionCreated.event_type](make_event(
            ConnectionCreated(connection_id=new_id(), owner_id=author, target_kind="practitioner", target_id=viewer),
            source="bench", subject=author))
    assert await store.grants.count_documents({f"{OUTBOX}.id": {"$exists": True}}) == 0
    return {"viewer": viewer, "owner": owner, "read_chart": read_chart, "owner_chart": first_chart[owner],
            "grants": len(grants),
            "viewer_token": signer.issue(viewer, "practitioner", ttl_seconds=86400),
            "owner_token": signer.issue(owner, "practitioner", ttl_seconds=86400)}


def charts_app(charts: int, info_file: str, port: int) -> tuple[FastAPI, ServiceSettings]:
    from clinishare_charts.app import create_app
    from clinishare_charts.settings import ChartsSettings
    from clinishare_shared.auth import StaticKeyProvider, TokenSigner
    from clinishare_shared.bus.memory import InMemoryBus
    from clinishare_shared.directory import StaticDirectory

    from bench.floor import add_floor_routes

    signer = TokenSigner.generate()
    settings = ChartsSettings(port=port)
    bus = InMemoryBus()
    app = create_app(settings, bus=bus, keys=StaticKeyProvider(signer.jwks()), directory=StaticDirectory())
    add_floor_routes(app, bare_items())
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        await bus.start()
        # the relay publishes chart shares: give them a consumer so they are routable
        await bus.subscribe("bench", ["charts.#"], _discard)
        async with inner(a) as state:
            info = await seed_charts(a, charts, signer)
            with open(info_file + ".tmp", "w") as f:
                json.dump(info, f)
            os.replace(info_file + ".tmp", info_file)
            yield state
        await bus.close()

    app.router.lifespan_context = lifespan
    return app, settings


async def _discard(event: Any) -> None:
    return None


def main(argv: list[str]) -> None:
    from clinishare_shared.logging import configure_logging
    from clinishare_shared.serve import run

    kind, port = argv[0], int(argv[1])
    if kind == "bare":
        settings = ServiceSettings(service_name="bare", port=port, log_level="WARNING")
        configure_logging(service="bare", level=settings.log_level, json=True)
        run(bare_app(), settings)
    elif kind == "upstream":
        settings = ServiceSettings(service_name="upstream", port=port, log_level="WARNING")
        configure_logging(service="upstream", level=settings.log_level, json=True)
        run(upstream_app(), settings)
    elif kind == "gateway":
        from clinishare_gateway.app import create_app as gateway_app
        from clinishare_gateway.settings import GatewaySettings
        from clinishare_shared.routes import SERVICES

        settings = GatewaySettings(port=port, **{f"{s}_url": argv[2] for s in SERVICES})
        configure_logging(service="gateway", level=settings.log_level, json=settings.log_json)
        run(gateway_app(settings), settings)
    elif kind == "charts":
        app, settings = charts_app(int(argv[2]), argv[3], port)
        configure_logging(service="charts", level=settings.log_level, json=settings.log_json)
        run(app, settings)
    else:
        raise SystemExit(f"unknown server {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
