"""The bench's floor endpoints, added to the charts service it measures (``add_floor_routes``): what any
request of the service pays before its own work (its middlewares, log line and token check: ``/bench/frame``),
and that plus one document read by ``_id`` on the service's engine (``/bench/one-read``). Both answer the
bare endpoint's body, so the only differences from the baseline are those costs.

(No ``from __future__ import annotations`` here: FastAPI reads these signatures' dependencies at run time.)
"""

from typing import Any

from fastapi import FastAPI

from clinishare_charts.api.deps import StoreDep
from clinishare_shared.auth import CurrentPrincipal


def add_floor_routes(app: FastAPI, items: list[dict[str, Any]]) -> None:
    async def frame(me: CurrentPrincipal) -> dict[str, Any]:
        return {"items": items, "next_cursor": None}

    async def one_read(me: CurrentPrincipal, store: StoreDep, chart_id: str) -> dict[str, Any]:
        assert await store.chart(chart_id) is not None
        return {"items": items, "next_cursor": None}

    app.add_api_route("/bench/frame", frame, methods=["GET"], include_in_schema=False)
    app.add_api_route("/bench/one-read", one_read, methods=["GET"], include_in_schema=False)
