"""deploy/nginx/clinishare.conf is the route table as nginx runs it: generated from
clinishare_shared.routes (current), and, run by a real nginx in front of stub services, every path
reaches the service that owns it (as the gateway routes it), unknown paths are 404 problem+json, and a
request id is kept or made."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from clinishare_gateway.nginx import render
from clinishare_shared.routes import DEFAULT_PORTS, ROUTES, SERVICES, owner_of
from clinishare_shared.testing import LiveServer, wait_for

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "clinishare.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def test_committed_config_is_current() -> None:
    assert CONF.read_text() == render(), "run: python -m clinishare_gateway.nginx > deploy/nginx/clinishare.conf"


def test_every_route_has_its_locations() -> None:
    text = render()
    for prefix, service in ROUTES:
        if "*" in prefix:
            assert f"(/.*)?$ {{ proxy_pass http://clinishare_{service}; }}" in text
            continue
        assert f"location = {prefix} {{ proxy_pass http://clinishare_{service}; }}" in text
        assert f"location {prefix}/ {{ proxy_pass http://clinishare_{service}; }}" in text
    for service in SERVICES:
        assert f"server 127.0.0.1:{DEFAULT_PORTS[service]}" in text


def _stub(name: str) -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def echo(request: Request, path: str) -> dict[str, str | int | None]:
        return {"service": name, "path": "/" + path, "request_id": request.headers.get("x-request-id"),
                "body": len(await request.body())}

    return app


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it; apt-get install nginx)")
async def test_nginx_routes_like_the_gateway(tmp_path: Path) -> None:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        servers = {s: await stack.enter_async_context(LiveServer(_stub(s))) for s in SERVICES}
        ports = {s: int(servers[s].url.rsplit(":", 1)[1]) for s in SERVICES}
        listen = _port()
        ports["gateway"] = listen
        (tmp_path / "logs").mkdir()
        (tmp_path / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
            "events { worker_connections 64; }\n"
            f"http {{\naccess_log off;\nclient_body_temp_path {tmp_path}/body;\nproxy_temp_path {tmp_path}/proxy;\n"
            f"{render(ports, listen=listen)}\n}}\n")
        proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listen}") as client:
                async def up() -> bool:
                    if proc.poll() is not None:
                        raise AssertionError(proc.stdout.read().decode() if proc.stdout else "nginx exited")
                    try:
                        await client.get("/v1/charts")
                        return True
                    except httpx.HTTPError:
                        return False

                await wait_for(up, timeout=20, message="nginx up")
                for route, _ in ROUTES:
                    prefix = route.replace("*", "p123")
                    for path in (prefix, prefix.rstrip("/") + "/x/y"):
                        r = await client.get(path)
                        assert r.status_code == 200, (path, r.text)
                        assert r.json()["service"] == owner_of(path), path
                        assert r.json()["path"] == path and r.json()["request_id"]
                kept = await client.get("/v1/notifications", headers={"x-request-id": "abc-123"})
                assert kept.json()["request_id"] == "abc-123"
                doc = await client.get("/_services/documents/readyz")
                assert doc.json() == {**doc.json(), "service": "documents", "path": "/readyz"}
                body = b"x" * (2 * 1024 * 1024)
                up_r = await client.post("/v1/documents", content=body)
                assert up_r.json()["body"] == len(body)
                for unknown in ("/v1/nothing", "/v1/chartsX", "/"):
                    r = await client.get(unknown)
                    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", unknown
                    assert r.json()["status"] == 404
        finally:
            proc.terminate()
            proc.wait(timeout=10)
