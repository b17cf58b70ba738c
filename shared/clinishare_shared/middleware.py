"""Binds a request id and a correlation id to every log line of a request, and echoes them back."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clinishare_shared.observability import HTTP_REQUESTS, HTTP_SECONDS, server_span

log = structlog.get_logger("clinishare.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            value = v.decode("latin-1")
            return value if _SAFE_ID.match(value) else None
    return None


_OWN = (b"x-request-id", b"x-correlation-id")


def _series(service: str, method: str, route: str, status: int) -> tuple[Any, Any]:
    """The request counter's and the duration histogram's children for these labels, made once each
    (``labels()`` takes a lock and checks its arguments on every call). Bounded: routes are templates."""
    method = method if method in _METHODS else "other"  # a client's made-up method is no new series
    key = (service, method, route, status)
    found = _SERIES.get(key)
    if found is None:
        found = _SERIES[key] = (HTTP_REQUESTS.labels(service, method, route, str(status)),
                                HTTP_SECONDS.labels(service, method, route))
    return found


_SERIES: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The matched route's template (``/v1/charts/{chart_id}``), never the raw path: bounded label values."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    """One request id per request: the caller's (the gateway's) if it sent a safe one, else a new one. It is
    bound to every log line, travels on outgoing calls (``observability.outgoing_headers``), becomes the
    ``correlation_id`` of the events the request stages, and is returned exactly once (a proxied response's
    own copy is replaced). Also the request's server span and its HTTP metrics."""

    def __init__(self, app: ASGIApp, service: str = "clinishare") -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        correlation_id = _header(scope, b"x-correlation-id") or request_id
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OWN]
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-correlation-id", correlation_id.encode()))
                message["headers"] = headers
            await send(message)

        method = scope["method"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])
                   if k in (b"traceparent", b"tracestate")}
        with structlog.contextvars.bound_contextvars(request_id=request_id, correlation_id=correlation_id), \
                server_span(method, headers) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                elapsed = time.perf_counter() - start
                route = route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                span.set_attribute("clinishare.request_id", request_id)
                requests, seconds = _series(self.service, method, route, status)
                requests.inc()
                seconds.observe(elapsed)
                # the path only: query strings may hold a patient's name typed into a search box
                log.info("request", method=method, path=scope["path"], status=status,
                         duration_ms=round(elapsed * 1000, 1))
