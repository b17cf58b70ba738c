"""The gateway's one pooled client for its upstreams: plain HTTP/1.1 over asyncio streams, parsed by
httptools (uvicorn's own parser), bodies streamed both ways.

Why not httpx here: forwarding is all the gateway does, and through httpx (request and response models,
anyio streams, h11) it cost about 2 ms per request on this machine against the 1 ms the gateway may add.
This speaks only what our services speak (HTTP/1.1, keep-alive, Content-Length or chunked bodies).

- Bounded: at most ``max_connections`` requests are in flight at once (a further one waits for a slot, up
  to ``timeout``); at most ``max_keepalive`` idle connections are kept, each for ``keepalive_expiry``
  seconds (less than uvicorn keeps an idle connection, 5 s, so we never send on one it is closing).
- Timeouts: ``connect_timeout`` to connect, ``timeout`` for each read and write.
- ``Refused`` (never connected: safe to try another replica, even for a POST) is told apart from
  ``UpstreamError`` (anything after the request may have been sent: never retried).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

CHUNK = 64 * 1024


class UpstreamError(Exception):
    """The exchange failed after the connection was made (the upstream may have seen the request)."""


class Refused(UpstreamError):
    """No connection could be made: the request was never sent."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    _body: AsyncIterator[bytes]
    _release: Callable[[bool], None]
    _done: bool = field(default=False)

    async def aiter_body(self) -> AsyncIterator[bytes]:
        reusable = False
        try:
            async for chunk in self._body:
                yield chunk
            reusable = True
        finally:
            self._finish(reusable)

    async def read(self) -> bytes:
        return b"".join([c async for c in self.aiter_body()])

    async def aclose(self) -> None:
        self._finish(False)

    def _finish(self, reusable: bool) -> None:
        if not self._done:
            self._done = True
            self._release(reusable)


class _Parser:
    """httptools callbacks for one response."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.body: deque[bytes] = deque()
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()


class UpstreamPool:
    def __init__(self, *, max_connections: int = 200, max_keepalive: int = 50, keepalive_expiry: float = 4.0,
                 connect_timeout: float = 5.0, timeout: float = 30.0) -> None:
        self.max_keepalive = max_keepalive
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, int], deque[_Conn]] = {}
        self._idle_count = 0
        self.opened = 0  # connections made so far (tests: kept-alive reuse)

    async def aclose(self) -> None:
        for conns in self._idle.values():
            while conns:
                conns.pop().close()
        self._idle_count = 0

    async def _connect(self, key: tuple[str, int]) -> tuple[_Conn, bool]:
        """A kept-alive connection to ``key`` if one is fresh, else a new one; and whether it was reused."""
        conns = self._idle.get(key)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            self._idle_count -= 1
            if now - conn.idle_since < self.keepalive_expiry and not conn.reader.at_eof():
                return conn, True
            conn.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(key[0], key[1], limit=CHUNK)
        except (OSError, TimeoutError) as exc:
            raise Refused(f"{type(exc).__name__}: {exc}") from exc
        self.opened += 1
        return _Conn(reader, writer), False

    def _put_back(self, key: tuple[str, int], conn: _Conn) -> None:
        if self._idle_count >= self.max_keepalive:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(key, deque()).append(conn)
        self._idle_count += 1

    async def request(self, base_url: str, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                      body: Callable[[], Awaitable[tuple[bytes, bool]]] | bytes = b"", *,
                      timeout: float | None = None) -> Response:
        """Send ``method target`` to ``base_url`` (``http://host:port``) with ``headers`` (no hop-by-hop
        ones; Host is set here). ``body`` is bytes or a function giving the next (chunk, more) pair, sent as
        it comes: with its Content-Length if ``headers`` has one, else chunked. The response's headers are
        read before this returns; its body streams from ``aiter_body()`` (or ``read()``); the slot and the
        connection are given back when the body is done or ``aclose()`` is called. ``timeout`` replaces the
        pool's for this call's reads and writes."""
        timeout = timeout or self.timeout
        url = urlsplit(base_url)
        key = (url.hostname or "127.0.0.1", url.port or 80)
        try:
            async with asyncio.timeout(self.timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise UpstreamError("no upstream connection free within the timeout") from exc
        conn: _Conn | None = None
        try:
            conn, reused = await self._connect(key)
            try:
                parsed = await self._exchange(conn, key, method, target, headers, body, timeout)
            except Refused:
                raise
            except (OSError, EOFError, TimeoutError, httptools.HttpParserError) as exc:
                raise UpstreamError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            if conn is not None:
                conn.close()
            self._slots.release()
            raise
        def release(reusable: bool) -> None:
            assert conn is not None
            # asked once the message is complete (llhttp answers False before)
            if reusable and parsed.complete and parsed.keep_alive:
                self._put_back(key, conn)
            else:
                conn.close()
            self._slots.release()

        head = method == "HEAD" or parsed.status in (204, 304)
        return Response(parsed.status, parsed.headers, self._body(conn, parsed, head, timeout), release)

    async def _exchange(self, conn: _Conn, key: tuple[str, int], method: str, target: bytes,
                        headers: list[tuple[bytes, bytes]], body: Callable[[], Awaitable[tuple[bytes, bool]]] | bytes,
                        timeout: float) -> _Parser:
        host = key[0].encode() + (b":%d" % key[1])
        lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode(), target, host)]
        has_length = False
        for k, v in headers:
            if k == b"content-length":
                has_length = True
            lines.append(k + b": " + v + b"\r\n")
        w = conn.writer
        async with asyncio.timeout(timeout):
            if isinstance(body, bytes):
                if body and not has_length:
                    lines.append(b"content-length: %d\r\n" % len(body))
                lines.append(b"\r\n")
                w.write(b"".join(lines) + body)
            else:
                chunked = not has_length and method not in ("GET", "HEAD", "DELETE", "OPTIONS")
                if chunked:
                    lines.append(b"transfer-encoding: chunked\r\n")
                lines.append(b"\r\n")
                w.write(b"".join(lines))
                more = True
                while more:
                    chunk, more = await body()
                    if chunk:
                        w.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                        await w.drain()
                if chunked:
                    w.write(b"0\r\n\r\n")
            await w.drain()
            p = _Parser()
            while not p.headers_done:
                data = await conn.reader.read(CHUNK)
                if not data:
                    raise EOFError("the upstream closed the connection before answering")
                p.parser.feed_data(data)
        return p

    async def _body(self, conn: _Conn, p: _Parser, head: bool, timeout: float) -> AsyncIterator[bytes]:
        if head:  # the answer to a HEAD (or a 204/304) ends with its headers
            p.complete = True
            p.keep_alive = b"close" not in {v.lower() for k, v in p.headers if k == b"connection"}
            return
        while True:
            while p.body:
                yield p.body.popleft()
            if p.complete:
                return
            async with asyncio.timeout(timeout):
                data = await conn.reader.read(CHUNK)
            if not data:
                p.parser.feed_data(b"")  # a body delimited by the connection's end completes here
                if not p.complete:
                    raise UpstreamError("the upstream closed the connection mid-body")
            else:
                p.parser.feed_data(data)
