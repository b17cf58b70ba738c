"""Every endpoint and every dependency on the request path is async: FastAPI runs a plain ``def`` one in a
worker thread, one thread hop per request (and per dependency) for work that never blocks."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from clinishare_audit.app import create_app as audit
from clinishare_charts.app import create_app as charts
from clinishare_documents.app import create_app as documents
from clinishare_forms.app import create_app as forms
from clinishare_gateway.app import create_app as gateway
from clinishare_identity.app import create_app as identity
from clinishare_notify.app import create_app as notify


def _calls(dependant: Any) -> list[Any]:
    out = [dependant.call] if dependant.call is not None else []
    for sub in dependant.dependencies:
        out.extend(_calls(sub))
    return out


def _routes(routes: Any) -> list[APIRoute]:
    out = []
    for route in routes:
        included = getattr(route, "original_router", None)  # include_router keeps the router whole
        if included is not None:
            out.extend(_routes(included.routes))
        elif isinstance(route, APIRoute):
            out.append(route)
    return out


def _threaded(app: Any) -> list[str]:
    bad = []
    routes = _routes(app.routes)
    assert routes, "no routes found: the walk over included routers is broken"
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        for call in _calls(route.dependant):
            target = call if inspect.isfunction(call) or inspect.ismethod(call) else getattr(call, "__call__", call)
            if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
                bad.append(f"{route.path} {sorted(route.methods)}: {getattr(call, '__qualname__', call)!r}")
    return bad


@pytest.mark.parametrize("factory", [identity, charts, documents, forms, notify, audit, gateway],
                         ids=["identity", "charts", "documents", "forms", "notify", "audit", "gateway"])
def test_every_dependency_and_endpoint_is_async(factory: Any) -> None:
    assert _threaded(factory()) == []


def _plain() -> int:
    return 1


def test_the_check_finds_a_plain_def_dependency() -> None:
    app = FastAPI()

    async def endpoint(v: Annotated[int, Depends(_plain)]) -> int:
        return v

    app.get("/x")(endpoint)
    assert len(_threaded(app)) == 1
