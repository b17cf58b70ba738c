"""Helpers for the common library's own tests (test modules must not import each other: helpers live here
and are handed out as fixtures)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlparse

import aio_pika
import pytest

from clinishare_shared.events import (
    ConnectionCreated, Envelope, EventData, OfficeMember, OfficeMemberAdded, make_event,
)
from clinishare_shared.testing import delete_broker_objects
from clinishare_shared.processes import free_port


@pytest.fixture
def db(mongo_client: Any, db_name: str) -> Any:
    return mongo_client[db_name]


@pytest.fixture
def make_envelope() -> Callable[..., Envelope]:
    """``make_envelope(data=None, source="identity")``: an envelope around ``data`` (default: a connection)."""

    def build(data: EventData | None = None, *, source: str = "identity", subject: str | None = None) -> Envelope:
        data = data or ConnectionCreated(connection_id="c1", owner_id="p1", target_kind="practitioner",
                                         target_id="p2")
        return make_event(data, source=source, subject=subject or "subject-1")

    return build


@pytest.fixture
def member_added() -> Callable[..., Envelope]:
    def build(office_id: str, account_id: str, version: int, members: dict[str, str]) -> Envelope:
        return make_event(
            OfficeMemberAdded(office_id=office_id, account_id=account_id, role=members.get(account_id, "staff"),
                              version=version,
                              members=[OfficeMember(account_id=a, role=r) for a, r in members.items()]),
            source="identity", subject=office_id)

    return build



class TcpProxy:
    """A loopback TCP proxy in front of the broker that a test can cut (a real outage: the client's sockets
    drop and new connections are refused) and restore on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()


@pytest.fixture
async def broker_proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    p = urlparse(amqp_url)
    proxy = TcpProxy(p.hostname or "127.0.0.1", p.port or 5672)
    await proxy.start()
    yield proxy
    await proxy.cut()


@pytest.fixture
def proxied_url(amqp_url: str, broker_proxy: TcpProxy) -> str:
    """The broker URL through the cuttable proxy, reconnecting quickly."""
    p = urlparse(amqp_url)
    netloc = f"{p.username}:{p.password}@127.0.0.1:{broker_proxy.port}" if p.username else \
        f"127.0.0.1:{broker_proxy.port}"
    return p._replace(netloc=netloc, query="reconnect_interval=0.2").geturl()


@pytest.fixture
async def amqp_admin(amqp_url: str, unique: str) -> AsyncIterator[dict[str, Any]]:
    """A plain channel for inspecting queues, and teardown that deletes every ``test.<unique>*`` queue and
    exchange the test registered in ``admin["queues"]`` / ``admin["exchanges"]``."""
    conn = await aio_pika.connect(amqp_url)
    channel = await conn.channel()
    admin: dict[str, Any] = {"conn": conn, "channel": channel, "queues": [], "exchanges": []}
    yield admin
    await conn.close()
    await delete_broker_objects(amqp_url, queues=admin["queues"], exchanges=admin["exchanges"])
