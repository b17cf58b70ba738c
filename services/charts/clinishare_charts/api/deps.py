"""Annotated dependencies: the store, the identity projection and directory, the caller's offices, and
"load the chart or 404" (a chart the caller may not read is exactly as missing as one that does not exist)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from clinishare_charts.service import read_grounds
from clinishare_charts.store import ChartStore
from clinishare_shared.auth import CurrentPrincipal
from clinishare_shared.deps import AuthorizationHeader, DirectoryDep, ProjectionDep, from_state
from clinishare_shared.domain.access import Readable
from clinishare_shared.mongo import now_ms
from clinishare_shared.problems import Problem
from clinishare_shared.ids import PathId


StoreDep = Annotated[ChartStore, from_state("store")]
Authorization = AuthorizationHeader


async def _viewer_offices(principal: CurrentPrincipal, projection: ProjectionDep) -> dict[str, str]:
    return await projection.roles_of(principal.id)


ViewerOffices = Annotated[dict[str, str], Depends(_viewer_offices)]


async def _readable_chart(chart_id: PathId, principal: CurrentPrincipal,
                          store: StoreDep, projection: ProjectionDep) -> Readable:
    chart = await store.chart(chart_id)
    if chart is None:
        raise Problem(404, "chart not found")
    if chart["author_id"] == principal.id:
        return Readable(chart, [])
    found = await read_grounds(store=store, projection=projection, chart=chart, viewer_id=principal.id, now=now_ms())
    if not found:
        raise Problem(404, "chart not found")
    return Readable(chart, found)


ReadableChart = Annotated[Readable, Depends(_readable_chart)]


async def _own_chart(chart_id: PathId, principal: CurrentPrincipal,
                     store: StoreDep) -> dict[str, Any]:
    """A chart the caller wrote; for anyone else (readers included) it does not exist here."""
    chart = await store.chart(chart_id)
    if chart is None or chart["author_id"] != principal.id:
        raise Problem(404, "chart not found")
    return chart


OwnChart = Annotated[dict[str, Any], Depends(_own_chart)]
