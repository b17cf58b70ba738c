"""The gateway's own upstream client (clinishare_gateway.upstream): what httpx did for it, kept: streamed
bodies both ways (chunked when the upstream streams), HEAD and 204 without a body, raw paths and queries
as sent, kept-alive connections reused only while fresh, a refusal told apart from a failure."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from clinishare_gateway.app import GatewaySettings, create_app
from clinishare_gateway.upstream import Refused, UpstreamError, UpstreamPool
from clinishare_shared.testing import LiveServer
from clinishare_shared.processes import free_port



def service(seen: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/charts/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> Any:
            for i in range(5):
                yield f"part {i};".encode() * 1000
                await asyncio.sleep(0.01)

        return StreamingResponse(parts(), media_type="text/plain")

    @app.api_route("/v1/charts/{rest:path}", methods=["GET", "HEAD", "POST", "DELETE"])
    async def echo(rest: str, request: Request) -> Any:
        seen["raw_path"] = request.scope.get("raw_path")
        seen["query"] = request.scope.get("query_string")
        seen["port"] = request.client.port if request.client else None
        if request.method == "DELETE":
            return Response(status_code=204)
        body = await request.body()
        seen["chunked"] = request.headers.get("transfer-encoding")
        return {"len": len(body)}

    return app


async def test_streams_chunked_answers_heads_and_no_content_and_keeps_the_raw_path() -> None:
    seen: dict[str, Any] = {}
    async with LiveServer(service(seen)) as charts:
        async with LiveServer(create_app(GatewaySettings(charts_url=charts.url))) as gw, \
                httpx.AsyncClient(base_url=gw.url) as client:
            r = await client.get("/v1/charts/stream")
            assert r.status_code == 200 and r.text == "".join(f"part {i};" * 1000 for i in range(5))
            assert "content-length" not in r.headers  # streamed through, not buffered
            head = await client.head("/v1/charts/abc")
            assert head.status_code == 200 and head.content == b""
            gone = await client.delete("/v1/charts/abc")
            assert gone.status_code == 204 and gone.content == b""
            r = await client.get("/v1/charts/a%2Fb%20c?q=%C3%A9t%C3%A9&x=1")
            assert seen["raw_path"] == b"/v1/charts/a%2Fb%20c" and seen["query"] == b"q=%C3%A9t%C3%A9&x=1"

            async def upload() -> Any:
                for _ in range(4):
                    yield b"y" * 100_000

            r = await client.post("/v1/charts/up", content=upload())  # a client's chunked upload
            assert r.json() == {"len": 400_000} and seen["chunked"] == "chunked"
            # every one of these went over the same kept-alive connection
            assert gw.app.state.pool.opened == 1


async def test_a_connection_idle_past_its_expiry_is_not_reused() -> None:
    seen: dict[str, Any] = {}
    async with LiveServer(service(seen)) as charts:
        pool = UpstreamPool(keepalive_expiry=1.0)
        try:
            for _ in range(2):
                assert (await (await pool.request(charts.url, "GET", b"/v1/charts/a", [])).read()) == b'{"len":0}'
            assert pool.opened == 1
            await asyncio.sleep(1.2)
            await (await pool.request(charts.url, "GET", b"/v1/charts/a", [])).read()
            assert pool.opened == 2
        finally:
            await pool.aclose()


async def test_refused_is_told_apart_from_a_failure_after_sending() -> None:
    pool = UpstreamPool(timeout=0.5)
    with pytest.raises(Refused):
        await pool.request(f"http://127.0.0.1:{free_port()}", "POST", b"/v1/charts", [], b"{}")

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()  # took the request, answered nothing

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(UpstreamError) as failed:
            await pool.request(f"http://127.0.0.1:{port}", "POST", b"/v1/charts", [], b"{}")
        assert not isinstance(failed.value, Refused)
    finally:
        server.close()
        await pool.aclose()
