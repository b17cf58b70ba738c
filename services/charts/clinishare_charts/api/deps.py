"""Annotated dependencies: the store, the identity projection and directory, the caller's offices, and
"load the chart or 404" (a chart the caller may not read is exactly as missing as one that does not exist)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request

from clinishare_charts.domain.access import ChartRef, GrantRef, can_read, practitioner_offices
from clinishare_charts.store import ChartStore
from clinishare_shared.auth import CurrentPrincipal
from clinishare_shared.directory import Directory
from clinishare_shared.problems import Problem
from clinishare_shared.projection import IdentityProjection


def _store(request: Request) -> ChartStore:
    return request.app.state.store


def _projection(request: Request) -> IdentityProjection:
    return request.app.state.projection


def _directory(request: Request) -> Directory:
    return request.app.state.directory


def _authorization(request: Request) -> str:
    # already verified by the principal dependency; forwarded as is when identity is asked on our caller's behalf
    return request.headers.get("authorization", "")


StoreDep = Annotated[ChartStore, Depends(_store)]
ProjectionDep = Annotated[IdentityProjection, Depends(_projection)]
DirectoryDep = Annotated[Directory, Depends(_directory)]
Authorization = Annotated[str, Depends(_authorization)]


async def memberships(projection: IdentityProjection, account_id: str) -> dict[str, str]:
    """Office id -> the account's role there, now, per the projection."""
    out: dict[str, str] = {}
    for office in await projection.offices_of(account_id):
        for m in office.get("members", []):
            if m["account_id"] == account_id:
                out[office["_id"]] = m["role"]
    return out


async def _viewer_offices(principal: CurrentPrincipal, projection: ProjectionDep) -> dict[str, str]:
    return await memberships(projection, principal.id)


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
