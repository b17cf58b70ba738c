"""FastAPI dependencies every service's ``api/deps.py`` builds on: objects its lifespan put on
``app.state``, as ``Annotated`` aliases (``StoreDep = Annotated[ChartStore, from_state("store")]``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from clinishare_shared.directory import Directory
from clinishare_shared.projection import IdentityProjection


def from_state(name: str) -> Any:
    """``Depends`` on ``request.app.state.<name>``. Async, as every dependency on the request path: FastAPI
    runs a plain ``def`` dependency in a worker thread, a thread hop per request for an attribute read."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"state_{name}"
    return Depends(dependency)


async def _authorization(request: Request) -> str:
    # verified by the principal dependency; forwarded as is when identity is asked on the caller's behalf
    return request.headers.get("authorization", "")


ProjectionDep = Annotated[IdentityProjection, from_state("projection")]
DirectoryDep = Annotated[Directory, from_state("directory")]
AuthorizationHeader = Annotated[str, Depends(_authorization)]
