"""The API gateway: one public address, each /v1/... path forwarded to the service that owns it.

Requests and responses are streamed through (documents can be large). The route table is the one the
all-in-one process uses (clinishare_shared.routes), so both agree on who owns what.

Replicas: a service's URL setting may list several base URLs (comma-separated); requests go to them in
turn (round-robin), and a replica that refuses the connection (down, restarting) is skipped for the next
one: a refused connection means the request was never sent, so trying another replica is safe even for
a POST. Any other failure is answered 502, never retried (the request may have been processed).
"""

from __future__ import annotations

import itertools
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.background import BackgroundTask

from clinishare_shared.apidocs import install_swagger_ui
from clinishare_shared.app import install_metrics
from clinishare_shared.asyncapi import asyncapi_document
from clinishare_shared.openapi import combined_openapi
from clinishare_shared.http import pooled_client
from clinishare_shared.middleware import RequestContextMiddleware
from clinishare_shared.observability import outgoing_headers
from clinishare_shared.protection import SecurityHeadersMiddleware
from clinishare_shared.problems import install_problem_handlers, problem_response
from clinishare_shared.routes import SERVICES, browser_redirect, owner_of

from clinishare_gateway.settings import GatewaySettings

log = structlog.get_logger("clinishare.gateway")
# Content-Length is kept both ways: an upload keeps its length (not re-chunked), a download announces it
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host"}
# replaced by the gateway's own: its request id (the one it logs and returns), correlation id and trace
OWN_HEADERS = {"x-request-id", "x-correlation-id", "traceparent", "tracestate"}


def create_app(settings: GatewaySettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    turns = {service: itertools.cycle(range(len(settings.upstreams(service)))) for service in SERVICES}

    def replicas(service: str) -> list[str]:
        """Every replica, starting with the one whose turn it is."""
        urls = settings.upstreams(service)
        first = next(turns[service])
        return urls[first:] + urls[:first]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # one pooled client for every upstream: keep-alive, bounded, timeouts on every phase
        app.state.client = pooled_client(transport=transport, timeout=settings.timeout_seconds,
                                         connect_timeout=settings.connect_timeout_seconds,
                                         max_connections=settings.max_connections,
                                         max_keepalive=settings.max_keepalive_connections)
        yield
        await app.state.client.aclose()

    app = FastAPI(title="Clinishare gateway", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    # the services limit bodies and answer CORS themselves (their headers are passed through); the gateway's
    # own answers (404, 502) get the same security headers
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware, service="gateway")
    install_problem_handlers(app)
    install_metrics(app, relays=dict)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> Any:
        checks: dict[str, bool] = {}
        for service in SERVICES:
            checks[service] = False
            for upstream in settings.upstreams(service):  # ready when one replica is
                try:
                    resp = await request.app.state.client.get(f"{upstream}/readyz", timeout=3)
                    if resp.status_code == 200:
                        checks[service] = True
                        break
                except httpx.HTTPError:
                    pass
        if all(checks.values()):
            return {"status": "ready", "checks": checks}
        return problem_response(503, detail="a service is not ready", checks=checks)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> Any:
        """The whole API in one document, from each service's own (re-read at most once a minute)."""
        cached = request.app.state.openapi
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        documents: dict[str, Any] = {}
        for service in SERVICES:
            for upstream in settings.upstreams(service):
                try:
                    resp = await request.app.state.client.get(f"{upstream}/openapi.json", timeout=5)
                    if resp.status_code == 200:
                        documents[service] = resp.json()
                        break
                except httpx.HTTPError:
                    pass
            else:
                return problem_response(503, detail=f"the {service} service did not give its OpenAPI document")
        document = combined_openapi(documents)
        request.app.state.openapi = (time.monotonic() + 60, document)
        return document

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document()

    install_swagger_ui(app)
    app.state.openapi = None

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                   include_in_schema=False)
    async def proxy(request: Request, path: str) -> Any:
        if settings.web_url:
            target = browser_redirect(request.method, request.url.path, dict(request.headers))
            if target is not None:  # an e-mail's API link opened in a browser: the console page of the item
                query = request.url.query
                return RedirectResponse(target + (f"?{query}" if query else ""), status_code=303)
        service = owner_of(request.url.path)
        if service is None and request.url.path.startswith("/_services/"):
            # each service's own OpenAPI document and health: /_services/<name>/openapi.json
            _, _, name, *rest = request.url.path.split("/", 3)
            if name in SERVICES:
                return await _forward(request, replicas(name), "/" + (rest[0] if rest else ""))
        if service is None and settings.web_url and not request.url.path.startswith("/v1/"):
            return await _forward(request, [settings.web_url.rstrip("/")], request.url.path)
        if service is None:
            return problem_response(404, detail="no such endpoint", instance=request.url.path)
        return await _forward(request, replicas(service), request.url.path)

    return app


async def _forward(request: Request, upstreams: list[str], path: str) -> Any:
    client: httpx.AsyncClient = request.app.state.client
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | OWN_HEADERS]
    headers.append(("x-forwarded-for", request.client.host if request.client else ""))
    if "x-forwarded-host" not in request.headers and "host" in request.headers:
        # the console builds links (a portal invite) with the address the visitor used
        headers.append(("x-forwarded-host", request.headers["host"]))
    if "x-forwarded-proto" not in request.headers:
        headers.append(("x-forwarded-proto", request.url.scheme))
    headers.extend(outgoing_headers().items())
    body = request.stream()
    response = None
    for upstream in upstreams:
        upstream_request = client.build_request(
            request.method, upstream + path, params=request.query_params.multi_items(), headers=headers,
            content=body,
        )
        try:
            response = await client.send(upstream_request, stream=True)
            break
        except httpx.ConnectError as exc:  # never reached it: the next replica may take it
            log.warning("upstream_refused_trying_next", upstream=upstream, error=type(exc).__name__)
        except httpx.HTTPError as exc:
            log.warning("upstream_unreachable", upstream=upstream, error=type(exc).__name__)
            break
    if response is None:
        return problem_response(502, title="Bad gateway", detail="the service is not reachable",
                                instance=request.url.path)
    out_headers = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
    return StreamingResponse(response.aiter_raw(), status_code=response.status_code, headers=out_headers,
                             background=BackgroundTask(response.aclose))


def run() -> None:
    from clinishare_shared.logging import configure_logging
    from clinishare_shared.observability import setup_tracing
    from clinishare_shared.serve import load_settings, run as serve

    settings = load_settings(GatewaySettings, service="gateway")
    configure_logging(service="gateway", level=settings.log_level, json=settings.log_json)
    setup_tracing("gateway")
    serve(create_app(settings), settings)
