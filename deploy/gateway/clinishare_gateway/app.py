"""The API gateway: one public address, each /v1/... path forwarded to the service that owns it.

Requests and responses are streamed through (documents can be large). The route table is the one the
all-in-one process uses (clinishare_shared.routes), so both agree on who owns what.

Replicas: a service's URL setting may list several base URLs (comma-separated); requests go to them in
turn (round-robin), and a replica that refuses the connection (down, restarting) is skipped for the next
one: a refused connection means the request was never sent, so trying another replica is safe even for
a POST. Any other failure is answered 502, never retried (the request may have been processed).

The fast path: a request for a path a service owns goes from uvicorn through the request-context and
security-header middlewares straight to ``forward`` (plain ASGI), never through FastAPI's routing,
request and response objects; the gateway's own endpoints (health, OpenAPI, Swagger UI, metrics), the
console, ``/_services/...`` and the 404 for unknown paths are the FastAPI app behind it. Both forward
through ONE pooled client (``upstream.UpstreamPool``).
"""

from __future__ import annotations

import itertools
import json
import time
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, AsyncIterator
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from clinishare_shared.apidocs import install_swagger_ui
from clinishare_shared.app import install_metrics
from clinishare_shared.asyncapi import asyncapi_document
from clinishare_shared.openapi import combined_openapi
from clinishare_shared.middleware import RequestContextMiddleware
from clinishare_shared.observability import outgoing_headers
from clinishare_shared.protection import SecurityHeadersMiddleware
from clinishare_shared.problems import install_problem_handlers, problem_response
from clinishare_shared.routes import SERVICES, browser_redirect, owner_of

from clinishare_gateway.settings import GatewaySettings
from clinishare_gateway.upstream import Refused, UpstreamError, UpstreamPool

log = structlog.get_logger("clinishare.gateway")
# Content-Length is kept both ways: an upload keeps its length (not re-chunked), a download announces it
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailers",
              b"transfer-encoding", b"upgrade", b"host"}
# replaced by the gateway's own: its request id (the one it logs and returns), correlation id and trace
OWN_HEADERS = {b"x-request-id", b"x-correlation-id", b"traceparent", b"tracestate"}
# not forwarded either: the gateway sends the body on without asking (uvicorn answers a client's Expect)
NOT_FORWARDED = HOP_BY_HOP | OWN_HEADERS | {b"expect"}
# the metrics' and trace's route label of every forwarded request (bounded, as FastAPI's catch-all was)
PROXY_ROUTE = SimpleNamespace(path="/{path:path}")
NO_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class Gateway:
    """The ASGI app uvicorn serves: forwarded paths take the fast path, the rest go to ``api`` (FastAPI).
    Attributes not its own (``state``, ``router``, ...) are the FastAPI app's."""

    def __init__(self, api: FastAPI, settings: GatewaySettings, replicas: Any) -> None:
        self.api = api
        self.settings = settings
        self.replicas = replicas
        self.fast = RequestContextMiddleware(SecurityHeadersMiddleware(self._forward), service="gateway")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            service = owner_of(path)
            if service is not None and not (self.settings.web_url and browser_redirect(
                    scope["method"], path, {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})):
                scope["route"] = PROXY_ROUTE
                scope["clinishare.upstreams"] = self.replicas(service)
                await self.fast(scope, receive, send)
                return
        await self.api(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = scope.get("raw_path") or quote(scope["path"]).encode()
        await forward(self.api.state.pool, scope, receive, send, scope["clinishare.upstreams"], target)


def create_app(settings: GatewaySettings | None = None) -> Gateway:
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
        app.state.pool = UpstreamPool(timeout=settings.timeout_seconds, connect_timeout=settings.connect_timeout_seconds,
                                      max_connections=settings.max_connections,
                                      max_keepalive=settings.max_keepalive_connections)
        yield
        await app.state.pool.aclose()

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
                status, _ = await _get(request.app.state.pool, upstream, "/readyz", timeout=3)
                if status == 200:
                    checks[service] = True
                    break
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
                status, body = await _get(request.app.state.pool, upstream, "/openapi.json", timeout=5)
                if status == 200:
                    documents[service] = json.loads(body)
                    break
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
                return Forwarded(replicas(name), "/" + (rest[0] if rest else ""))
        if service is None and settings.web_url and not request.url.path.startswith("/v1/"):
            return Forwarded([settings.web_url.rstrip("/")], request.url.path)
        if service is None:
            return problem_response(404, detail="no such endpoint", instance=request.url.path)
        return Forwarded(replicas(service), request.url.path)  # reached only with a console's redirect rules

    return Gateway(app, settings, replicas)


class Forwarded(Response):
    """The FastAPI routes' answer that forwards the request (its body still unread) like the fast path."""

    def __init__(self, upstreams: list[str], path: str) -> None:
        self.upstreams, self.path = upstreams, path
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await forward(scope["app"].state.pool, scope, receive, send, self.upstreams, quote(self.path).encode())


async def _get(pool: UpstreamPool, upstream: str, path: str, *, timeout: float) -> tuple[int, bytes]:
    """The gateway's own GET (readiness, OpenAPI documents): status and body, 0 when unreachable."""
    headers = [(k.encode(), v.encode()) for k, v in outgoing_headers().items()]
    try:
        response = await pool.request(upstream, "GET", path.encode(), headers, timeout=timeout)
        return response.status, await response.read()
    except (UpstreamError, TimeoutError):
        return 0, b""


async def forward(pool: UpstreamPool, scope: Scope, receive: Receive, send: Send, upstreams: list[str],
                  target: bytes) -> None:
    """Send the request to the first replica that takes the connection; stream the answer back."""
    method = scope["method"]
    headers = [(k, v) for k, v in scope["headers"] if k not in NOT_FORWARDED]
    names = {k for k, _ in scope["headers"]}
    client = scope.get("client")
    headers.append((b"x-forwarded-for", (client[0] if client else "").encode()))
    if b"x-forwarded-host" not in names and b"host" in names:
        # the console builds links (a portal invite) with the address the visitor used
        headers.append((b"x-forwarded-host", next(v for k, v in scope["headers"] if k == b"host")))
    if b"x-forwarded-proto" not in names:
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    headers.extend((k.encode(), v.encode()) for k, v in outgoing_headers().items())
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]

    body: Any = b""
    if method not in NO_BODY or b"content-length" in names or b"transfer-encoding" in names:
        async def body() -> tuple[bytes, bool]:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise UpstreamError("the client went away")
            return message.get("body", b""), message.get("more_body", False)

    response = None
    for upstream in upstreams:
        try:
            response = await pool.request(upstream, method, target, headers, body)
            break
        except Refused as exc:  # never reached it: the next replica may take it
            log.warning("upstream_refused_trying_next", upstream=upstream, error=str(exc)[:200])
        except UpstreamError as exc:
            log.warning("upstream_unreachable", upstream=upstream, error=str(exc)[:200])
            break
    if response is None:
        await problem_response(502, title="Bad gateway", detail="the service is not reachable",
                               instance=scope["path"])(scope, receive, send)
        return
    try:
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(k, v) for k, v in response.headers if k not in HOP_BY_HOP]})
        async for chunk in response.aiter_body():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await response.aclose()


def run() -> None:
    from clinishare_shared.logging import configure_logging
    from clinishare_shared.observability import setup_tracing
    from clinishare_shared.serve import load_settings, run as serve

    settings = load_settings(GatewaySettings, service="gateway")
    configure_logging(service="gateway", level=settings.log_level, json=settings.log_json)
    setup_tracing("gateway")
    serve(create_app(settings), settings)
