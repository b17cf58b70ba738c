"""SPEC 10.3's HTTP protections hold on every service of the running system (the all-in-one process, each
service its own app): JSON bodies over 1 MiB are 413 before parsing, every /v1 answer carries the security
headers and no Server header, CORS answers only when CORS_ORIGINS is set, uploads keep their own limit."""

from typing import Any

import httpx
import pytest

from clinishare_allinone.system import create_system
from clinishare_shared.testing import LiveServer

BIG = b'{"email":"' + b"a" * (2 * 1024 * 1024) + b'"}'
# one JSON route of each service, with and without authentication
ROUTES = [("POST", "/v1/auth/token"), ("POST", "/v1/accounts"), ("POST", "/v1/charts"), ("POST", "/v1/chart-shares"),
          ("POST", "/v1/documents/labels"), ("POST", "/v1/forms"), ("PUT", "/v1/notification-preferences")]


@pytest.fixture
async def system(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CORS_ORIGINS", "https://console.example.org")
    async with LiveServer(create_system()) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


async def test_every_service_refuses_a_large_json_body_and_protects_its_answers(system: httpx.AsyncClient) -> None:
    for method, path in ROUTES:
        r = await system.request(method, path, content=BIG, headers={"content-type": "application/json"})
        assert r.status_code == 413, (path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
        r = await system.request(method, path, json={}, headers={"origin": "https://console.example.org"})
        assert r.status_code in (401, 422), (path, r.status_code)
        assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
        assert "server" not in r.headers
        assert r.headers["access-control-allow-origin"] == "https://console.example.org"
        r = await system.request(method, path, json={}, headers={"origin": "https://elsewhere.example.net"})
        assert "access-control-allow-origin" not in r.headers
    assert (await system.get("/v1/no-such-route")).headers["cache-control"] == "no-store"


async def test_cors_is_off_without_cors_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORS_ORIGINS", raising=False)
    async with LiveServer(create_system()) as server, httpx.AsyncClient(base_url=server.url) as http:
        r = await http.options("/v1/auth/token", headers={"origin": "https://console.example.org",
                                                          "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in r.headers
