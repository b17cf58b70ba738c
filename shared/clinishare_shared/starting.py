"""A service whose database is not there yet starts anyway, and comes up by itself when it appears.

``run_service`` serves every standalone service through ``WaitForDatabase``: the HTTP server starts at once
(uvicorn's own start-up completes immediately), while in the background the wrapper pings MongoDB with
back-off, for ever, logging each failure, and only once it answers runs the service's own lifespan (its
indexes, relay, consumer). Until then ``/healthz`` answers 200 (the process is alive), ``/readyz`` 503 with
``checks.database: false``, and every other request 503 with ``Retry-After``. A lifespan that fails to
start (the database went away again half-way) is retried the same way: the process never exits for want of
its database. The broker needs none of this: ``RabbitBus.start`` already connects in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pymongo import AsyncMongoClient

from clinishare_shared.lifecycle import cancel_and_wait

log = structlog.get_logger("clinishare.starting")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def database_answers(url: str, *, timeout: float = 2.0) -> bool:
    """One ``ping`` within ``timeout`` seconds."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(url, serverSelectionTimeoutMS=int(timeout * 1000),
                                                     connectTimeoutMS=int(timeout * 1000))
    try:
        await client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        await client.close()


class WaitForDatabase:
    """ASGI wrapper: the app's lifespan runs once ``url``'s MongoDB answers (see the module docstring)."""

    def __init__(self, app: Any, *, url: str, service: str, retry_max: float = 30.0,
                 ping: Callable[[str], Awaitable[bool]] = database_answers) -> None:
        self.app = app
        self.url = url
        self.service = service
        self.retry_max = retry_max
        self.ping = ping
        self.started = asyncio.Event()
        self._starter: asyncio.Task[None] | None = None
        self._inner: asyncio.Task[Any] | None = None
        self._inner_receive: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._inner_sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._state: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.started.is_set():
            if self._state:
                scope = {**scope, "state": {**self._state, **scope.get("state", {})}}
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self._not_yet(scope, send)
        # a websocket before the start is simply not accepted

    # ---- before the service has started -------------------------------------------------------------

    async def _not_yet(self, scope: Scope, send: Send) -> None:
        path = scope.get("path", "")
        if path == "/healthz":
            status, body, content_type = 200, {"status": "ok"}, "application/json"
        else:
            detail = "starting: the database is not reachable yet"
            body = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": detail}
            if path == "/readyz":
                body["checks"] = {"database": False}
            status, content_type = 503, "application/problem+json"
        payload = json.dumps(body).encode()
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode()),
                   (b"cache-control", b"no-store")]
        if status == 503:
            headers.append((b"retry-after", b"5"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    # ---- the lifespan ----------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._starter = asyncio.get_running_loop().create_task(self._start(), name="wait-for-database")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await cancel_and_wait(self._starter)
                await self._stop_inner()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        delay, tries = 0.5, 0
        while True:
            if await self.ping(self.url):
                if await self._start_inner():
                    if tries:
                        log.info("service_started", service=self.service, after_tries=tries)
                    return
                what = "service_start_retrying"
            else:
                what = "database_unreachable"
            tries += 1
            log.warning(what, service=self.service, retry_in=delay, tries=tries)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    async def _start_inner(self) -> bool:
        """Run the app's lifespan start; True once it completed. A failed start is logged and cleaned up."""
        self._inner_receive = asyncio.Queue()
        self._inner_sent = asyncio.Queue()
        self._state = {}
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self._state}
        self._inner = asyncio.get_running_loop().create_task(
            self.app(scope, self._inner_receive.get, self._inner_sent.put), name="service-lifespan")
        await self._inner_receive.put({"type": "lifespan.startup"})
        replied = asyncio.ensure_future(self._inner_sent.get())
        await asyncio.wait([replied, self._inner], return_when=asyncio.FIRST_COMPLETED)
        reply = replied.result() if replied.done() else {"type": "lifespan.startup.failed", "message": "exited"}
        replied.cancel()
        if reply["type"] == "lifespan.startup.complete":
            self.started.set()
            return True
        log.error("service_start_failed", service=self.service, error=reply.get("message", "")[-2000:])
        with contextlib.suppress(BaseException):
            await self._inner
        self._inner = None
        return False

    async def _stop_inner(self) -> None:
        if self._inner is None:
            return
        if self.started.is_set():
            await self._inner_receive.put({"type": "lifespan.shutdown"})
            await self._inner_sent.get()
        with contextlib.suppress(BaseException):
            await cancel_and_wait(self._inner)
