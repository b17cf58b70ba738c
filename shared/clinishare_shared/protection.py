"""HTTP protections every service (and the gateway) applies the same way (SPEC 10.3):

- request bodies over 1 MiB are refused with 413 before anything parses them (multipart uploads are
  exempt: the documents service streams them under its own, larger limit);
- every ``/v1`` response says ``Cache-Control: no-store`` and ``X-Content-Type-Options: nosniff`` (PHI
  must not sit in a shared cache, nor be sniffed into HTML), and no response names the server;
- CORS is off unless ``CORS_ORIGINS`` lists origins (comma-separated).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clinishare_shared.problems import problem_response

MAX_JSON_BYTES = 1024 * 1024
# what is read and thrown away after refusing, so the client can read the 413 (a connection closed on
# unread data is reset, and most clients then report a network error instead of the answer)
DRAIN_BYTES = 16 * MAX_JSON_BYTES
EXPOSED_HEADERS = ["ETag", "Retry-After", "X-Request-Id", "X-Correlation-Id", "Location"]


def header(scope: Scope, name: bytes) -> bytes | None:
    """A request header's raw value (``name`` in lower case), or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` (already read in full), then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: at once when ``Content-Length`` says so, else as soon as the
    streamed bytes pass the limit; the app is only called with a body that fits (it is buffered, at
    most ``max_bytes``, and replayed)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_JSON_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = (header(scope, b"content-type") or b"").lower()
        if content_type.startswith(b"multipart/form-data"):
            await self.app(scope, receive, send)
            return
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope, receive, send, drain=int(length) <= DRAIN_BYTES)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, drain=message.get("more_body", False))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, *, drain: bool) -> None:
        """Answer 413; the body is never parsed, only read and dropped (up to DRAIN_BYTES)."""
        drained = 0
        while drain and drained <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            drain = message.get("more_body", False)
        response = problem_response(413, detail=f"the request body is larger than {self.max_bytes} bytes",
                                    instance=scope["path"], max_bytes=self.max_bytes)
        if drain:  # more than DRAIN_BYTES: stop reading and close
            response.headers["connection"] = "close"
        await response(scope, receive, send)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, prefix: str = "/v1") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"] == self.prefix or scope["path"].startswith(self.prefix + "/")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                drop = {b"server"} | ({b"cache-control", b"x-content-type-options"} if api else set())
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in drop]
                if api:
                    headers += [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


def cors_origins(environ: Any = None) -> list[str]:
    """``CORS_ORIGINS`` as a list (empty: CORS off)."""
    raw = (os.environ if environ is None else environ).get("CORS_ORIGINS", "")
    return [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]


def protect(app: Any, *, origins: Sequence[str] | None = None, limit_bodies: bool = True) -> None:
    """Install the protections on ``app`` (call before any outer middleware such as the request
    context, so that those see the protected responses). ``origins`` default: ``CORS_ORIGINS``."""
    if limit_bodies:
        app.add_middleware(BodyLimitMiddleware)
    origins = cors_origins() if origins is None else list(origins)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match",
                                          "X-Request-Id"],
                           expose_headers=EXPOSED_HEADERS, max_age=600)
    app.add_middleware(SecurityHeadersMiddleware)
