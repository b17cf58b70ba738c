"""A minimal HTTP/1.1 keep-alive load generator on asyncio streams.

httpx costs about as much CPU per request as a bare FastAPI endpoint, so measuring with it would compress
every ratio towards 1. This client does the least work that still reads every response whole
(Content-Length or chunked bodies) and checks its status.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse


class Connection:
    def __init__(self, url: str) -> None:
        p = urlparse(url)
        self.host, self.port = p.hostname or "127.0.0.1", p.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    IDLE_SECONDS = 3.0  # below uvicorn's keep-alive timeout (5 s): an idler connection is reopened first

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.used_at = time.monotonic()
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass

    async def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                      body: Any = None) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None and self.writer is not None
        if time.monotonic() - self.used_at > self.IDLE_SECONDS:  # the server may have closed it: never
            await self.close()                                      # send on a connection it may drop
            await self.open()
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body is not None:
            lines.append("Content-Type: application/json")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(payload)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        hdrs: dict[str, str] = {}
        for line in header_lines:
            if line:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            data = await self.reader.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        else:
            data = b""
        self.used_at = time.monotonic()
        return status, hdrs, data


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


async def load(url: str, make_request: Any, *, requests: int, concurrency: int = 8, warmup: int = 20,
               expect: int | tuple[int, ...] = 200) -> Result:
    """Send ``requests`` requests over ``concurrency`` keep-alive connections; ``make_request(i)`` gives
    ``(method, path, headers, body)``. Returns the rate and each request's latency."""
    expected = (expect,) if isinstance(expect, int) else expect
    conns = [await Connection(url).open() for _ in range(concurrency)]
    try:
        for i in range(warmup):
            method, path, headers, body = make_request(-1 - i)
            status, _, data = await conns[i % concurrency].request(method, path, headers=headers, body=body)
            if status not in expected:
                raise AssertionError(f"{method} {path}: {status} {data[:300]!r}")
        counter = iter(range(requests))
        latencies: list[float] = []

        async def worker(conn: Connection) -> None:
            for i in counter:
                method, path, headers, body = make_request(i)
                t0 = time.perf_counter()
                status, _, data = await conn.request(method, path, headers=headers, body=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                if status not in expected:
                    raise AssertionError(f"{method} {path}: {status} {data[:300]!r}")

        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        return Result(requests, time.perf_counter() - start, latencies)
    finally:
        for c in conns:
            await c.close()
