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
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import pytest

from clinishare_shared.auth import StaticKeyProvider, TokenSigner
from clinishare_shared import ferretdb
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


async def flush_outbox(app: Any, bus: Any) -> None:
    """Publish whatever ``app``'s outbox holds now and, on the in-memory bus, wait until every consumer
    handled it: only after this does "nothing was published" mean something."""
    await app.state.infra.relay.run_once()
    drain = getattr(bus, "drain", None)
    if drain is not None:
        await drain()
