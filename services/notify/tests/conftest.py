"""Fixtures for the notify tests: a running notify service (real HTTP, and the real RabbitMQ or the
in-memory bus), fed the way production feeds it, by events on the bus; and a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from clinishare_notify.app import create_app
from clinishare_notify.settings import NotifySettings
from clinishare_shared.bus.base import EventBus
from clinishare_shared.bus.memory import InMemoryBus
from clinishare_shared.events import AccountRegistered, Envelope, EventData, OfficeCreated, OfficeMember, make_event
from clinishare_shared.testing import LiveServer, delete_broker_objects, wait_for
from clinishare_shared.processes import free_port



@dataclass
class Smtp:
    """A loopback SMTP server. ``fail_with`` set: every DATA is answered with that reply."""

    port: int
    fail_with: str | None = None
    attempts: int = 0
    messages: list[Any] = field(default_factory=list)
    sessions: list[Any] = field(default_factory=list)  # the client's (host, port) of each message's session
    controller: Any = None  # what serves it (a test may restart it)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        self.sessions.append(session.peer)
        if self.fail_with:
            return self.fail_with
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp(port=free_port())
    server.controller = Controller(server, hostname="127.0.0.1", port=server.port)
    server.controller.start()
    yield server
    server.controller.stop()


@dataclass
class Notify:
    app: Any
    url: str
    bus: EventBus

    @property
    def db(self) -> Any:
        return self.app.state.infra.db

    @property
    def store(self) -> Any:
        return self.app.state.store

    @property
    def worker(self) -> Any:
        return self.app.state.email_worker

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)

    async def publish(self, data: EventData, *, source: str = "test", settle: bool = True) -> Envelope:
        event = make_event(data, source=source, subject=data.event_type)
        await self.bus.publish(event)
        if settle:
            await self.settled(event)
        return event

    async def settled(self, event: Envelope) -> None:
        """Wait until the consumer recorded the event as processed."""
        await wait_for(lambda: self.db["processed_events"].find_one({"_id": event.id}),
                       message=f"{event.type} processed")

    async def account(self, account_id: str, kind: str = "practitioner", *, name: str | None = None,
                      email: str | None = None) -> None:
        await self.publish(AccountRegistered(account_id=account_id, kind=kind, name=name, email=email),
                           source="identity")

    async def office(self, office_id: str, owner_id: str, members: dict[str, str]) -> None:
        await self.publish(OfficeCreated(
            office_id=office_id, owner_id=owner_id, name="Office", version=1,
            members=[OfficeMember(account_id=a, role=r) for a, r in members.items()]), source="identity")

    async def notifications(self, **query: Any) -> list[dict[str, Any]]:
        return await self.db["notifications"].find(query).to_list()


@pytest.fixture
async def start_notify(request: pytest.FixtureRequest, mongo_client: Any, db_name: str, unique: str,
                       key_provider: Any) -> AsyncIterator[Any]:
    """``await start_notify(rabbit=True, **settings)`` starts the service; everything stops at teardown."""
    stack = AsyncExitStack()
    exchange, queue = f"test.{unique}", f"notify.{unique}"
    amqp_url: str | None = None

    async def start(*, rabbit: bool = False, **overrides: Any) -> Notify:
        nonlocal amqp_url
        if rabbit:
            amqp_url = request.getfixturevalue("amqp_url")
        values: dict[str, Any] = dict(
            mongodb_database=db_name, event_exchange=exchange, queue_name=queue, amqp_url=amqp_url,
            email_poll_seconds=0.05, email_backoff_base_seconds=0.01, public_base_url="https://clinishare.test",
        )
        settings = NotifySettings(**{**values, **overrides})
        bus: EventBus
        if rabbit:
            from clinishare_shared.bus.rabbit import RabbitBus

            app = create_app(settings, mongo_client=mongo_client, keys=key_provider)
            bus = RabbitBus(amqp_url, exchange=exchange)  # the test's own publisher connection
            await bus.start()
            stack.push_async_callback(bus.close)
        else:
            bus = InMemoryBus()
            stack.push_async_callback(bus.close)
            app = create_app(settings, bus=bus, mongo_client=mongo_client, keys=key_provider)
        server = await stack.enter_async_context(LiveServer(app))
        return Notify(app=app, url=server.url, bus=bus)

    yield start
    await stack.aclose()
    if amqp_url:
        await delete_broker_objects(amqp_url, queues=[queue], exchanges=[exchange])
