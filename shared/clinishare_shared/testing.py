"""pytest plugin shared by every service's tests (loaded with ``-p clinishare_shared.testing``).

MongoDB: a real server when ``MONGODB_URL`` is set, else a testcontainers MongoDB when a Docker engine
answers, else one FerretDB (SQLite handler, a fresh data directory) started for the whole run, each test
in its own database. Without FerretDB the run stops under CI (``CI=true``) and elsewhere falls back to
the in-process engine with a warning; the session header and summary say which engine ran. RabbitMQ:
``AMQP_URL`` or the local broker; if it does not answer, broker tests FAIL (they are never skipped).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import pytest

from clinishare_shared.auth import StaticKeyProvider, TokenSigner
from clinishare_shared import ferretdb
from clinishare_shared.bus.base import EventBus, Handler, PublishFailed
from clinishare_shared.events import Envelope
from clinishare_shared.mongo import open_client

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
_engine: dict[str, Any] = {}


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def _resolve_mongo() -> tuple[str | None, str]:
    if "url" in _engine:
        return _engine["url"], _engine["label"]
    url, label = os.environ.get("MONGODB_URL"), ""
    if url:
        label = "real MongoDB from MONGODB_URL"
    elif _docker_available():
        from testcontainers.mongodb import MongoDbContainer

        container = MongoDbContainer("mongo:7.0")
        container.start()
        _engine["container"] = container
        url, label = container.get_connection_url(), "real MongoDB in a testcontainer"
    elif (binary := ferretdb.find_binary()) is not None:
        data = Path(tempfile.mkdtemp(prefix="clinishare-ferretdb-"))
        server = ferretdb.FerretDB(data, binary=binary).start()
        _engine["ferretdb"], _engine["ferretdb_data"] = server, data
        url, label = server.url, f"{ferretdb.LABEL} at {server.url} (data in {data})"
    elif _in_ci():
        # CI must test on a real database engine; a silent fall back would hide everything issue 9 is for
        raise pytest.UsageError("FerretDB is missing under CI: `make test` builds it with `make ferretdb` "
                                "(needs Go), or set MONGODB_URL")
    else:
        label = ("in-process fallback engine (mongomock): no MONGODB_URL, Docker or FerretDB here; "
                 "run `make ferretdb` (needs Go) to test on a real engine")
    _engine["url"], _engine["label"] = url, label
    return url, label


def ferretdb_pid() -> int | None:
    """The pid of the FerretDB these tests started (None on another engine), for figures that count its CPU."""
    server = _engine.get("ferretdb")
    return server.process.pid if server is not None else None


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_report_header(config: pytest.Config) -> list[str]:
    _, label = _resolve_mongo()
    return [f"clinishare mongodb: {label}", f"clinishare rabbitmq: {_redact(os.environ.get('AMQP_URL', DEFAULT_AMQP))}"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"clinishare mongodb engine used: {_resolve_mongo()[1]}")


def pytest_unconfigure(config: pytest.Config) -> None:
    container = _engine.pop("container", None)
    if container is not None:
        container.stop()
    server = _engine.pop("ferretdb", None)
    if server is not None:
        server.stop()
        shutil.rmtree(_engine.pop("ferretdb_data"), ignore_errors=True)


def _redact(url: str) -> str:
    p = urlparse(url)
    return url.replace(f":{p.password}@", ":***@") if p.password else url


@pytest.fixture(scope="session")
def mongodb_url() -> str | None:
    return _resolve_mongo()[0]


@pytest.fixture
async def mongo_client(mongodb_url: str | None) -> Any:
    client = open_client(mongodb_url)
    created: list[str] = []
    client.test_databases = created  # tests register unique database names to be dropped
    yield client
    for name in created:
        await client.drop_database(name)
    await client.close()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for database, exchange and queue names, so tests never share state."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def db_name(mongo_client: Any, unique: str) -> str:
    name = f"test_{unique}"
    mongo_client.test_databases.append(name)
    return name


@pytest.fixture(scope="session")
def amqp_url() -> str:
    url = os.environ.get("AMQP_URL", DEFAULT_AMQP)
    p = urlparse(url)
    try:
        with socket.create_connection((p.hostname or "127.0.0.1", p.port or 5672), timeout=3):
            pass
    except OSError as exc:
        pytest.fail(f"RabbitMQ is not reachable at {_redact(url)} ({exc}); broker tests are never skipped. "
                    "Start it with `rabbitmq-server -detached`.")
    return url


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner.generate()


@pytest.fixture
def key_provider(signer: TokenSigner) -> StaticKeyProvider:
    return StaticKeyProvider(signer.jwks())


def bearer(signer: TokenSigner, sub: str, kind: str = "practitioner") -> dict[str, str]:
    return {"Authorization": f"Bearer {signer.issue(sub, kind)}"}


async def wait_for(condition: Callable[[], Any | Awaitable[Any]], *, timeout: float = 10.0,
                   interval: float = 0.02, message: str = "condition") -> Any:
    """Poll ``condition`` (sync or async) until it returns something truthy; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


class LiveServer:
    """A real HTTP server (uvicorn) for an ASGI app, on a free loopback port, in the test's event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: Any = None
        self.task: asyncio.Task[None] | None = None
        self.url = ""

    async def __aenter__(self) -> "LiveServer":
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        from clinishare_shared.serve import UVICORN_OPTIONS

        config = uvicorn.Config(self.app, **UVICORN_OPTIONS)
        self.server = uvicorn.Server(config)
        self.task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[sock]))
        await wait_for(lambda: self.server.started or self.task.done(), timeout=20, message="server start")
        if self.task.done():
            self.task.result()  # surface a start-up failure
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


class _Yielding:
    """Wraps a collection, cursor or database so every awaited call first yields to the event loop, as a
    real server's round trip does: concurrent tasks then interleave between every two database calls on
    any engine, which is what a race test needs."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getitem__(self, name: str) -> "_Yielding":
        return _Yielding(self._target[name])

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return _Yielding(attr) if hasattr(attr, "find_one") else attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.isawaitable(result):
                async def later() -> Any:
                    await asyncio.sleep(0)
                    value = await result
                    await asyncio.sleep(0)
                    return _Yielding(value) if hasattr(value, "to_list") else value
                return later()
            return _Yielding(result) if hasattr(result, "to_list") or hasattr(result, "find_one") else result

        return call

    def __aiter__(self) -> Any:
        return self._target.__aiter__()


def yielding(db_or_collection: Any) -> Any:
    """``db_or_collection`` with a yield to the event loop around every awaited call (see ``_Yielding``)."""
    return _Yielding(db_or_collection)


async def outbox_emptied(relay: Any, *, timeout: float = 10.0) -> None:
    """Wait until ``relay`` has nothing left to publish. A consumer can see an event before the relay has
    removed it from its outbox (that happens after the broker's confirm), so asserting ``pending() == 0``
    the moment a consumer got it races."""

    async def empty() -> bool:
        return await relay.pending() == 0

    await wait_for(empty, timeout=timeout, message="the outbox to empty")


def record_kicks(relay: Any) -> list[tuple[Any, Any]]:
    """Record every kick ``relay`` gets from now on as ``(collection, document id)``, still passing it on:
    a store that stages events must name the document (a kick naming nothing asks for a full sweep). A
    new document handed over with its lease (``kick_claimed``, from ``outbox.insert_fresh``) counts as a
    kick naming it."""
    kicks: list[tuple[Any, Any]] = []
    forward, forward_claimed = relay.kick, relay.kick_claimed

    def record(collection: Any = None, doc_id: Any = None) -> None:
        kicks.append((collection, doc_id))
        forward(collection, doc_id)

    def record_claimed(claim: Any, events: Any) -> None:
        kicks.append((claim.collection, claim.doc_id))
        forward_claimed(claim, events)

    relay.kick = record  # a store's kick goes through Infra.kick to this relay
    relay.kick_claimed = record_claimed
    return kicks


async def flush_outbox(app: Any, bus: Any) -> None:
    """Publish whatever ``app``'s outbox holds now and, on the in-memory bus, wait until every consumer
    handled it: only after this does "nothing was published" mean something. A pass that a write's kick
    started may hold documents this pass skips (they are claimed), so it passes again until nothing is
    left staged."""
    relay = app.state.infra.relay

    async def flushed() -> bool:
        await relay.run_once()
        return await relay.pending() == 0

    await wait_for(flushed, timeout=10.0, interval=0.02, message="the outbox to be published")
    drain = getattr(bus, "drain", None)
    if drain is not None:
        await drain()


async def delete_broker_objects(amqp_url: str, *, queues: Any = (), exchanges: Any = ()) -> None:
    """Delete what a test declared on the shared broker: each queue with its dead-letter queue, each
    exchange with its dead-letter exchange and its stream. Missing ones are skipped."""
    import aio_pika

    names = [("queue", n) for q in queues for n in (q, f"{q}.dlq")]
    names += [(kind, n) for x in exchanges for kind, n in (("queue", f"{x}.stream"), ("exchange", x),
                                                           ("exchange", f"{x}.dlx"))]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for kind, name in names:
            try:
                await (channel.queue_delete(name) if kind == "queue" else channel.exchange_delete(name))
            except Exception:  # a refused delete closes the channel: carry on with a new one
                channel = await connection.channel()


class IdentityFacts:
    """Publishes identity facts the way identity does, for a service under test: office and care-team
    events carry increasing versions and the whole member snapshot, as identity's own do. ``settle`` (if
    given) is awaited with each published event, to wait until the service has handled it: the in-memory
    bus is drained by default; with a real broker pass ``processed_in(db)``."""

    def __init__(self, bus: Any, *, settle: Callable[[Any], Awaitable[None]] | None = None,
                 directory: Any = None) -> None:
        self.bus = bus
        self.settle = settle
        self.directory = directory  # a StaticDirectory to keep in step (identity's own answers), if any
        self.offices: dict[str, dict[str, str]] = {}
        self.care_teams: dict[str, list[str]] = {}
        self.versions: dict[str, int] = {}
        self.sent: list[Any] = []

    async def emit(self, data: Any, subject: str) -> Any:
        from clinishare_shared.events import make_event

        event = make_event(data, source="identity", subject=subject)
        await self.publish(event)
        return event

    async def publish(self, event: Any) -> None:
        """Publish ``event`` (again, for a redelivery) and settle."""
        from clinishare_shared.bus.memory import InMemoryBus

        await self.bus.publish(event)
        self.sent.append(event)
        if self.settle is not None:
            await self.settle(event)
        elif isinstance(self.bus, InMemoryBus):
            await self.bus.drain()

    def _members(self, office_id: str) -> list[Any]:
        from clinishare_shared.events import OfficeMember

        return [OfficeMember(account_id=a, role=r) for a, r in self.offices[office_id].items()]  # type: ignore[arg-type]

    def _next(self, aggregate_id: str) -> int:
        self.versions[aggregate_id] = self.versions.get(aggregate_id, 0) + 1
        return self.versions[aggregate_id]

    async def account(self, account_id: str, name: str | None = None, kind: str = "practitioner",
                      email: str | None = None) -> Any:
        from clinishare_shared.events import AccountRegistered

        return await self.emit(AccountRegistered(account_id=account_id, kind=kind, name=name, email=email),  # type: ignore[arg-type]
                               account_id)

    async def office(self, owner: str, members: dict[str, str] | None = None, *, name: str = "Clinic",
                     office_id: str | None = None) -> str:
        from clinishare_shared.events import OfficeCreated
        from clinishare_shared.mongo import new_id

        office_id = office_id or new_id()
        self.offices[office_id] = {owner: "practitioner", **(members or {})}
        await self.emit(OfficeCreated(office_id=office_id, owner_id=owner, name=name, version=self._next(office_id),
                                      members=self._members(office_id)), office_id)
        return office_id

    async def join(self, office_id: str, account_id: str, role: str = "practitioner") -> Any:
        from clinishare_shared.events import OfficeMemberAdded

        self.offices[office_id][account_id] = role
        return await self.emit(OfficeMemberAdded(office_id=office_id, account_id=account_id, role=role,  # type: ignore[arg-type]
                                                 version=self._next(office_id), members=self._members(office_id)),
                               office_id)

    async def leave(self, office_id: str, account_id: str) -> Any:
        from clinishare_shared.events import OfficeMemberRemoved

        self.offices[office_id].pop(account_id)
        return await self.emit(OfficeMemberRemoved(office_id=office_id, account_id=account_id,
                                                   version=self._next(office_id), members=self._members(office_id)),
                               office_id)

    async def connect(self, owner: str, target_id: str, kind: str = "practitioner") -> str:
        from clinishare_shared.events import ConnectionCreated
        from clinishare_shared.mongo import new_id

        cid = new_id()
        await self.emit(ConnectionCreated(connection_id=cid, owner_id=owner, target_kind=kind,  # type: ignore[arg-type]
                                          target_id=target_id), cid)
        return cid

    async def disconnect(self, cid: str, owner: str, target_id: str, kind: str = "practitioner",
                         deleted_by: str | None = None) -> Any:
        from clinishare_shared.events import ConnectionDeleted

        return await self.emit(ConnectionDeleted(connection_id=cid, owner_id=owner, target_kind=kind,  # type: ignore[arg-type]
                                                 target_id=target_id, deleted_by=deleted_by or owner), cid)

    async def patient(self, *care_team: str, name: str = "A Patient", patient_id: str | None = None) -> str:
        from clinishare_shared.events import PatientRegistered
        from clinishare_shared.mongo import new_id

        pid = patient_id or new_id()
        self.care_teams[pid] = list(care_team)
        if self.directory is not None:
            self.directory.patients[pid] = {"id": pid, "name": name}
            self.directory.care[pid] = set(care_team)
        await self.emit(PatientRegistered(patient_id=pid, registered_by=care_team[0], version=self._next(pid),
                                          care_team=list(care_team)), pid)
        return pid


def processed_in(db: Any, *, timeout: float = 10.0) -> Callable[[Any], Awaitable[None]]:
    """A ``settle`` for ``IdentityFacts`` on a real broker: wait until the service recorded the event as
    processed in its database."""

    async def settle(event: Any) -> None:
        await wait_for(lambda: db["processed_events"].find_one({"_id": event.id}), timeout=timeout,
                       message=f"{event.type} processed")

    return settle


# ---- the outbox relay's tests: a bus that records its batches, a database that records its calls ----

class StubBus(EventBus):
    """A bus with no broker behind it: starts, stops, answers pings, takes subscriptions and drops them;
    the relay tests' buses say what publishing does."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        return True

    async def subscribe(self, queue: str, routing_keys: Sequence[str], handler: Handler) -> None: ...


class PipelineBus(StubBus):
    """Records each publish_many call (the batches in flight) and can refuse chosen events."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []
        self.batches: list[list[str]] = []
        self.unroutable: set[str] = set()
        self.down = False

    async def publish(self, event: Envelope) -> None:
        raise AssertionError("the relay publishes in batches")

    async def publish_many(self, events: Sequence[Envelope], *, deadline: float | None = None,
                           traces: Any = None) -> list[PublishFailed | None]:
        await asyncio.sleep(0)
        self.batches.append([e.id for e in events])
        out: list[PublishFailed | None] = []
        for e in events:
            if self.down:
                out.append(PublishFailed("broker unavailable"))
            elif e.id in self.unroutable:
                out.append(PublishFailed("unroutable", unroutable=True))
            else:
                self.sent.append(e)
                out.append(None)
        return out


class RecordingDb:
    """Records (collection, method) of every database call, in order, into ``log`` (shared with the bus)."""

    CALLS = ("find", "find_one", "insert_one", "insert_many", "update_one", "update_many", "delete_one",
             "delete_many", "bulk_write", "find_one_and_update")

    def __init__(self, db: Any, log: list[tuple[str, str]]) -> None:
        self._db, self.log = db, log

    def __getitem__(self, name: str) -> Any:
        coll, log = self._db[name], self.log

        class Recorded:
            def __getattr__(self, attr: str) -> Any:
                inner = getattr(coll, attr)
                if attr not in RecordingDb.CALLS:
                    return inner

                def call(*args: Any, **kwargs: Any) -> Any:
                    log.append((name, attr))
                    return inner(*args, **kwargs)

                return call

        return Recorded()


class FilterSpy:
    """A collection that records the method and filter of each read and write that names one into
    ``calls`` (a bulk write: its statements' filters, as a list), and is otherwise the collection."""

    METHODS = ("find", "find_one", "update_one", "update_many", "delete_one", "delete_many",
               "find_one_and_update", "bulk_write")

    def __init__(self, coll: Any, calls: list[tuple[str, Any]] | None = None) -> None:
        self._coll = coll
        self.calls: list[tuple[str, Any]] = [] if calls is None else calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._coll, name)
        if name not in self.METHODS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            filter = [op._filter for op in args[0]] if name == "bulk_write" else (args[0] if args else kwargs.get("filter"))
            self.calls.append((name, filter))
            return attr(*args, **kwargs)

        return call


class FilterSpyDb:
    """A database whose collections named in ``only`` are ``FilterSpy``s recording into one ``calls``."""

    def __init__(self, db: Any, only: Sequence[str]) -> None:
        self._db, self._only = db, set(only)
        self.calls: list[tuple[str, Any]] = []

    def __getitem__(self, name: str) -> Any:
        coll = self._db[name]
        return FilterSpy(coll, self.calls) if name in self._only else coll

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


class LoggingBus(PipelineBus):
    def __init__(self, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self.log = log

    async def publish_many(self, events: Sequence[Envelope], *, deadline: float | None = None,
                           traces: Any = None) -> list[PublishFailed | None]:
        self.log.append(("bus", "publish_many"))
        return await super().publish_many(events, deadline=deadline, traces=traces)
