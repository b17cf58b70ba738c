"""Annotated dependencies: the store, the identity projection and directory, the caller's offices, and
"load the chart or 404" (a chart the caller may not read is exactly as missing as one that does not exist)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path

from clinishare_charts.domain.access import ChartRef, GrantRef, can_read, practitioner_offices
from clinishare_charts.store import ChartStore
from clinishare_shared.auth import CurrentPrincipal
from clinishare_shared.deps import AuthorizationHeader, DirectoryDep, ProjectionDep, from_state
from clinishare_shared.problems import Problem


StoreDep = Annotated[ChartStore, from_state("store")]
Authorization = AuthorizationHeader


async def _viewer_offices(principal: CurrentPrincipal, projection: ProjectionDep) -> dict[str, str]:
    return await projection.roles_of(principal.id)


ViewerOffices = Annotated[dict[str, str], Depends(_viewer_offices)]


async def _readable_chart(chart_id: Annotated[str, Path(max_length=64)], principal: CurrentPrincipal,
                          store: StoreDep, offices: ViewerOffices) -> dict[str, Any]:
    chart = await store.chart(chart_id)
    if chart is None:
        raise Problem(404, "chart not found")
    if chart["author_id"] != principal.id:
        grants = await store.grants_reaching(principal.id, practitioner_offices(offices), owner_id=chart["author_id"])
        if not can_read(principal.id, ChartRef.from_doc(chart), [GrantRef.from_doc(g) for g in grants], offices):
            raise Problem(404, "chart not found")
    return chart


ReadableChart = Annotated[dict[str, Any], Depends(_readable_chart)]
