"""One pooled HTTP client per peer: the identity directory and the gateway reuse kept-alive connections
and never open more than their bound at once (further calls wait their turn and still succeed)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI, Request

from clinishare_gateway.app import create_app as gateway_app
from clinishare_gateway.settings import GatewaySettings
from clinishare_shared.directory import IdentityDirectory
from clinishare_shared.testing import LiveServer


def identity_stub(seen: dict[str, Any]) -> FastAPI:
    """Answers identity's two directory paths and the charts paths; records the client ports it saw and
    the most requests it was serving at once (each is held briefly, so calls overlap)."""
    app = FastAPI()
    seen.update(ports=set(), now=0, most=0, delay=0.0)

    async def _serve(request: Request) -> None:
        seen["ports"].add(request.client.port if request.client else None)
        seen["now"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        try:
            await asyncio.sleep(seen["delay"])  # an upstream that takes time to answer
        finally:
            seen["now"] -= 1

    @app.get("/v1/sharing-list")
    async def sharing_list(request: Request) -> dict[str, Any]:
        await _serve(request)
        return {"practitioners": [{"id": "p1", "via": "pin"}], "offices": []}

    @app.get("/v1/charts/{chart_id}")
    async def chart(chart_id: str, request: Request) -> dict[str, Any]:
        await _serve(request)
        return {"id": chart_id}

    return app


async def test_directory_keeps_one_connection_alive_across_calls() -> None:
    seen: dict[str, Any] = {}
    async with LiveServer(identity_stub(seen)) as identity:
        directory = IdentityDirectory(identity.url)
        try:
            for _ in range(10):
                fresh = await directory.sharing_list(authorization="Bearer t")
                assert fresh is not None and fresh.practitioners == {"p1": "pin"}
            assert len(seen["ports"]) == 1  # ten calls, one connection
        finally:
            await directory.aclose()
        assert directory._client is None


async def test_directory_pool_is_bounded_and_waiting_calls_still_succeed() -> None:
    seen: dict[str, Any] = {}
    async with LiveServer(identity_stub(seen)) as identity:
        seen["delay"] = 0.05
        directory = IdentityDirectory(identity.url, max_connections=2)
        try:
            answers = await asyncio.gather(*(directory.sharing_list(authorization="Bearer t") for _ in range(8)))
        finally:
            await directory.aclose()
    assert all(a is not None for a in answers)
    assert seen["most"] == 2 and len(seen["ports"]) == 2


async def test_directory_unreachable_is_none_not_an_error() -> None:
    directory = IdentityDirectory("http://127.0.0.1:9", timeout=1.0)  # discard port: refused
    try:
        assert await directory.sharing_list(authorization="Bearer t") is None
    finally:
        await directory.aclose()


async def test_gateway_pool_is_bounded_and_reused() -> None:
    seen: dict[str, Any] = {}
    async with LiveServer(identity_stub(seen)) as charts:
        settings = GatewaySettings(charts_url=charts.url, max_connections=3, max_keepalive_connections=3)
        async with LiveServer(gateway_app(settings)) as gw, \
                httpx.AsyncClient(base_url=gw.url, limits=httpx.Limits(max_connections=20)) as client:
            for i in range(5):  # one after another: one upstream connection, kept alive
                assert (await client.get(f"/v1/charts/c{i}")).json() == {"id": f"c{i}"}
            assert len(seen["ports"]) == 1
            seen["delay"] = 0.05
            answers = await asyncio.gather(*(client.get(f"/v1/charts/c{i}") for i in range(12)))
    assert [r.status_code for r in answers] == [200] * 12
    assert seen["most"] == 3 and len(seen["ports"]) <= 3
