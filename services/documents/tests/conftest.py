"""Fixtures for the documents service's tests: the service over real HTTP with identity facts fed in as
identity events (never the identity service), and an observer of what it publishes."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from clinishare_shared.auth import TokenSigner
from clinishare_shared.bus.base import EventBus
from clinishare_shared.bus.memory import InMemoryBus
from clinishare_shared.bus.rabbit import RabbitBus
from clinishare_shared.directory import StaticDirectory
from clinishare_shared.events import Envelope, EventData
from clinishare_shared.testing import IdentityFacts, LiveServer, bearer, delete_broker_objects, processed_in, wait_for

from clinishare_documents.app import create_app
from clinishare_documents.settings import DocumentsSettings


SHARING = ("documents.shared", "documents.unshared")


class Crash(Exception):
    """The process dies here: nothing after this point of the call runs."""


class Harness:
    """One running documents service, a client, and helpers that speak for identity."""

    def __init__(self, *, app: Any, client: httpx.AsyncClient, bus: EventBus, identity_bus: EventBus, db: Any,
                 signer: TokenSigner) -> None:
        self.app, self.client, self.bus, self.identity_bus, self.db, self.signer = \
            app, client, bus, identity_bus, db, signer
        self.events: dict[str, Envelope] = {}
        self.facts = IdentityFacts(identity_bus, settle=processed_in(db))  # speaks for identity

    async def record(self, event: Envelope) -> None:
        self.events[event.id] = event

    def documents_events(self, types: tuple[str, ...] | None = None) -> list[Envelope]:
        return [e for e in self.events.values() if e.type.startswith("documents.")
                and (types is None or e.type in types)]

    async def flush(self, types: tuple[str, ...] | None = SHARING) -> list[Envelope]:
        """Publish whatever is in the outbox now and wait until the observer got it; the sharing events
        unless ``types`` says otherwise (``None``: every documents event, lifecycle ones included)."""
        await self.app.state.infra.relay.run_once()
        if isinstance(self.bus, InMemoryBus):
            await self.bus.drain()
        return self.documents_events(types)

    def auth(self, account_id: str, kind: str = "practitioner") -> dict[str, str]:
        return bearer(self.signer, account_id, kind)

    # ---- identity facts --------------------------------------------------------------------------

    async def identity(self, data: EventData, subject: str) -> None:
        """Publish an identity event and return once the service has processed it."""
        await self.facts.emit(data, subject)

    async def office(self, owner: str, **members: str) -> str:
        return await self.facts.office(owner, members, name="Office")

    async def add_member(self, office_id: str, account_id: str, role: str) -> None:
        await self.facts.join(office_id, account_id, role)

    async def remove_member(self, office_id: str, account_id: str) -> None:
        await self.facts.leave(office_id, account_id)

    async def patient(self, *care_team: str) -> str:
        return await self.facts.patient(*care_team)

    async def connect(self, owner: str, target_kind: str, target_id: str) -> str:
        return await self.facts.connect(owner, target_id, target_kind)

    async def disconnect(self, connection_id: str, owner: str, target_kind: str, target_id: str) -> None:
        await self.facts.disconnect(connection_id, owner, target_id, target_kind, deleted_by=target_id)

    async def account(self, account_id: str, name: str, kind: str = "practitioner") -> None:
        await self.facts.account(account_id, name, kind)

    # ---- the documents API -----------------------------------------------------------------------

    async def upload(self, who: str, content: bytes = b"hello clinic", *, filename: str = "note.txt",
                     content_type: str = "text/plain", patient_id: str | None = None) -> httpx.Response:
        data = {"patient_id": patient_id} if patient_id else None
        return await self.client.post("/v1/documents", headers=self.auth(who), data=data,
                                      files={"file": (filename, content, content_type)})

    async def upload_ok(self, who: str, content: bytes = b"hello clinic", **kw: Any) -> dict[str, Any]:
        resp = await self.upload(who, content, **kw)
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def label(self, who: str, ids: list[str], *, add: dict[str, Any] | None = None,
                    remove: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post("/v1/documents/labels", headers=self.auth(who),
                                      json={"document_ids": ids, "add": add or {}, "remove": remove or {}})

    async def label_that_dies_after_one_document(self, who: str, ids: list[str], add: dict[str, Any]) -> None:
        """A label call whose process dies right after it wrote the first of its documents."""
        store = self.app.state.store
        real, written = store.write_planned, []

        async def dies_after_one(intent_id: str, planned: Any) -> bool:
            if written:
                raise Crash
            written.append(planned.document_id)
            return await real(intent_id, planned)

        store.write_planned = dies_after_one
        try:
            resp = await self.label(who, ids, add=add)
        finally:
            del store.write_planned  # the restarted process runs the real code
        assert resp.status_code == 500 and written == ids[:1], resp.text

    async def shared_ids(self, who: str, kind: str = "practitioner") -> list[str]:
        resp = await self.client.get("/v1/documents", params={"scope": "shared"}, headers=self.auth(who, kind))
        assert resp.status_code == 200, resp.text
        return [d["id"] for d in resp.json()["items"]]

    async def stored_counts(self) -> dict[str, int]:
        return {name: await self.db[name].count_documents({}) for name in ("documents", "fs.files", "fs.chunks")}


StartService = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start_documents(mongo_client: Any, db_name: str, unique: str, signer: TokenSigner,
                          key_provider: Any) -> AsyncIterator[StartService]:
    """Start the documents service (in-memory bus unless ``bus`` is given) behind a live HTTP server."""
    async with AsyncExitStack() as stack:

        async def start(*, bus: EventBus | None = None, identity_bus: EventBus | None = None,
                        directory: Any = None, **overrides: Any) -> Harness:
            if bus is None:
                bus = InMemoryBus()
                stack.push_async_callback(bus.close)
            settings = DocumentsSettings(mongodb_database=db_name, outbox_poll_interval=0.05, **overrides)
            app = create_app(settings, bus=bus, mongo_client=mongo_client, keys=key_provider,
                             directory=directory or StaticDirectory())
            server = await stack.enter_async_context(LiveServer(app))
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=30))
            harness = Harness(app=app, client=client, bus=bus, identity_bus=identity_bus or bus,
                              db=mongo_client[db_name], signer=signer)
            await bus.subscribe(f"observer-{unique}", ["documents.#"], harness.record)
            return harness

        yield start


@pytest.fixture
async def rabbit(amqp_url: str, unique: str) -> AsyncIterator[Callable[[], Awaitable[RabbitBus]]]:
    """Real RabbitMQ buses on a test-only exchange; what the test declared is deleted afterwards.
    Request it before ``start_documents`` so the service stops before its bus closes."""
    buses: list[RabbitBus] = []

    async def make() -> RabbitBus:
        bus = RabbitBus(amqp_url, exchange=f"test.{unique}", connect_timeout=5)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()
    await delete_broker_objects(amqp_url, queues=[f"documents-{unique}", f"observer-{unique}"],
                                exchanges=[f"test.{unique}"])


@pytest.fixture
async def api(start_documents: StartService) -> Harness:
    return await start_documents()


@pytest.fixture
def sha256() -> Callable[[bytes], str]:
    return lambda data: hashlib.sha256(data).hexdigest()


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    return wait_for
