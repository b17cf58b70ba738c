"""One way to make an HTTP client for calls between our processes: pooled (keep-alive, bounded), with
timeouts on every phase. A service keeps ONE such client for a peer for its whole life (the identity
directory, the gateway's upstreams) instead of opening a connection per call."""

from __future__ import annotations

import httpx


def pooled_client(*, base_url: str = "", transport: httpx.AsyncBaseTransport | None = None,
                  connect_timeout: float = 5.0, timeout: float = 5.0, max_connections: int = 20,
                  max_keepalive: int = 10, keepalive_expiry: float = 4.0) -> httpx.AsyncClient:
    """``max_connections`` bounds the connections open at once (further calls wait for one, up to the
    pool timeout); ``max_keepalive`` idle ones are kept for reuse, each for ``keepalive_expiry`` seconds:
    less than our servers keep an idle connection (uvicorn: 5 s), so a kept connection is never one the
    server is closing as we send on it (that race answers a request with "server disconnected")."""
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive,
                            keepalive_expiry=keepalive_expiry),
    )
