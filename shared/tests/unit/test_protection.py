"""The HTTP protections of SPEC 10.3 on a bare app: body limit, security headers, CORS, no Server header."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from clinishare_shared.problems import install_problem_handlers
from clinishare_shared.protection import MAX_JSON_BYTES, cors_origins, protect
from clinishare_shared.testing import LiveServer


def make_app(origins: list[str] | None = None) -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    seen: list[int] = []  # body sizes the routes received

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict[str, int]:
        seen.append(len(await request.body()))
        return {"size": seen[-1]}

    @app.post("/v1/json")
    async def parsed(body: dict[str, Any]) -> dict[str, int]:
        seen.append(len(body))
        return {"keys": len(body)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    protect(app, origins=origins or [])
    install_problem_handlers(app)
    return app, seen


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_json_body_over_1_mib_is_413_before_the_route_parses_it() -> None:
    app, seen = make_app()
    big = b'{"a":"' + b"x" * MAX_JSON_BYTES + b'"}'
    async with client(app) as http:
        r = await http.post("/v1/json", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 413 and r.headers["cache-control"] == "no-store"
        fits = b'{"a":"' + b"x" * (MAX_JSON_BYTES - 8) + b'"}'
        assert len(fits) == MAX_JSON_BYTES
        assert (await http.post("/v1/json", content=fits, headers={"content-type": "application/json"})).json() == \
            {"keys": 1}
    assert seen == [1]


async def test_a_streamed_body_without_content_length_is_counted() -> None:
    app, seen = make_app()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 65536  # 1.25 MiB in all, no Content-Length

    async with client(app) as http:
        r = await http.post("/v1/echo", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers
        assert r.status_code == 413
        small = await http.post("/v1/echo", content=b"x" * 1000, headers={"content-type": "application/json"})
        assert small.json() == {"size": 1000}
    assert seen == [1000]


async def test_a_lying_content_length_is_refused_at_once() -> None:
    app, seen = make_app()
    async with client(app) as http:
        r = await http.post("/v1/echo", content=b"{}", headers={"content-type": "application/json",
                                                               "content-length": str(50 * MAX_JSON_BYTES)})
    assert r.status_code == 413 and seen == []


async def test_multipart_uploads_are_left_to_their_own_limit() -> None:
    app, seen = make_app()
    async with client(app) as http:
        r = await http.post("/v1/echo", files={"file": ("scan.bin", b"y" * (2 * MAX_JSON_BYTES))})
    assert r.status_code == 200 and seen[0] > 2 * MAX_JSON_BYTES


@pytest.mark.system  # a real uvicorn: its Server header is what is checked
async def test_v1_answers_are_not_cached_nor_sniffed_and_no_server_header_is_sent() -> None:
    app, _ = make_app()
    async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        for r in (await http.post("/v1/echo", content=b"{}"), await http.get("/v1/nothing-here"),
                  await http.post("/v1/json", content=b"not json", headers={"content-type": "application/json"})):
            assert r.headers["cache-control"] == "no-store", r.request.url
            assert r.headers["x-content-type-options"] == "nosniff"
            assert "server" not in r.headers
        health = await http.get("/healthz")
        assert "server" not in health.headers and "cache-control" not in health.headers


async def test_cors_is_off_unless_origins_are_listed() -> None:
    preflight = {"origin": "https://console.example.org", "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization,idempotency-key"}
    app, _ = make_app()
    async with client(app) as http:
        r = await http.options("/v1/echo", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await http.post("/v1/echo", content=b"{}", headers={"origin": "https://console.example.org"})
        assert "access-control-allow-origin" not in r.headers

    app, _ = make_app(origins=["https://console.example.org"])
    async with client(app) as http:
        r = await http.options("/v1/echo", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://console.example.org"
        assert "idempotency-key" in r.headers["access-control-allow-headers"].lower()
        r = await http.post("/v1/echo", content=b"{}", headers={"origin": "https://console.example.org"})
        assert r.headers["access-control-allow-origin"] == "https://console.example.org"
        assert "etag" in r.headers["access-control-expose-headers"].lower()
        r = await http.post("/v1/echo", content=b"{}", headers={"origin": "https://evil.example.net"})
        assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(("raw", "origins"), [
    ("", []), (" ", []), ("https://a.example.org", ["https://a.example.org"]),
    ("https://a.example.org/, http://localhost:3000", ["https://a.example.org", "http://localhost:3000"]),
])
def test_cors_origins_come_from_the_environment(raw: str, origins: list[str]) -> None:
    assert cors_origins({"CORS_ORIGINS": raw}) == origins


async def test_a_body_that_cannot_be_parsed_is_422_not_400() -> None:
    app, seen = make_app()
    async with client(app) as http:
        r = await http.post("/v1/json", content=b"\xff\xfe\x00garbage", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json" and seen == []
