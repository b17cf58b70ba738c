"""Annotated dependencies: the store, the identity projection and directory, the caller's offices, and
"load the chart or 404" (a chart the caller may not read is exactly as missing as one that does not exist)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from clinishare_charts import service
from clinishare_charts.domain.stored import ChartDoc
from clinishare_charts.store import ChartStore
from clinishare_shared.auth import CurrentPrincipal
from clinishare_shared.deps import AuthorizationHeader, DirectoryDep, ProjectionDep, from_state
from clinishare_shared.domain.access import Readable
from clinishare_shared.ids import PathId

__all__ = ["Authorization", "DirectoryDep", "OwnChart", "ProjectionDep", "ReadableChart", "StoreDep"]

StoreDep = Annotated[ChartStore, from_state("store")]
Authorization = AuthorizationHeader


async def _readable_chart(chart_id: PathId, principal: CurrentPrincipal, store: StoreDep,
                          projection: ProjectionDep) -> Readable[ChartDoc]:
    return await service.readable_chart(store=store, projection=projection, chart_id=chart_id,
                                        viewer_id=principal.id)


ReadableChart = Annotated[Readable[ChartDoc], Depends(_readable_chart)]


async def _own_chart(chart_id: PathId, principal: CurrentPrincipal, store: StoreDep) -> ChartDoc:
    return await service.own_chart(store=store, chart_id=chart_id, author_id=principal.id)


OwnChart = Annotated[ChartDoc, Depends(_own_chart)]
