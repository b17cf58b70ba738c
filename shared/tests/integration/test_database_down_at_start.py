"""Issue 11: a service whose MongoDB is down at start keeps retrying (back-off, for ever, logging), its
readiness reports the database down, and it comes up by itself when the database appears; it never exits.
A real identity process pointed at a port where FerretDB is not running yet, then FerretDB started there."""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from clinishare_shared.ferretdb import FerretDB, find_binary
from clinishare_shared.processes import Processes, free_port
from clinishare_shared.starting import WaitForDatabase
from clinishare_shared.testing import delete_broker_objects, wait_for



@pytest.mark.skipif(find_binary() is None, reason="needs the FerretDB binary (make ferretdb, or FERRETDB_BIN)")
async def test_a_service_started_before_its_database_waits_and_comes_up_by_itself(
        tmp_path: Path, amqp_url: str, unique: str) -> None:
    db_port = free_port()  # nothing listens there until FerretDB is started on it below
    exchange = f"dbdown.{unique}"
    procs = Processes(logs=tmp_path)
    env = {**os.environ, "MONGODB_URL": f"mongodb://127.0.0.1:{db_port}/", "AMQP_URL": amqp_url,
           "EVENT_EXCHANGE": exchange, "IDENTITY_QUEUE_NAME": f"identity.{exchange}",
           "IDENTITY_MONGODB_DATABASE": f"dbdown_{unique}", "LOG_JSON": "true",
           "IDENTITY_ARGON2_TIME_COST": "1", "IDENTITY_ARGON2_MEMORY_COST": "8", "IDENTITY_ARGON2_PARALLELISM": "1"}
    env.pop("EMBEDDED_ENGINES", None)
    port = free_port()
    proc = procs.add("identity", "clinishare_identity", {**env, "IDENTITY_PORT": str(port)}, port=port)
    ferret: FerretDB | None = None
    try:
        procs.start("identity")
        await procs.ready("identity", path="/healthz", timeout=60)  # alive and serving at once
        async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
            r = await http.get("/readyz")
            assert r.status_code == 503 and r.json()["checks"]["database"] is False
            r = await http.post("/v1/accounts", json={"email": "a@clinic.org", "password": "correct horse 42",
                                                      "name": "Dr A", "kind": "practitioner"})
            assert r.status_code == 503 and r.headers["retry-after"]  # nothing half-done while waiting

            async def retried() -> bool:  # it logs its retries, with back-off
                lines = [json.loads(x) for x in proc.log.read_text().splitlines() if x.startswith("{")]
                waits = [x["retry_in"] for x in lines if x.get("event") == "database_unreachable"]
                return len(waits) >= 3 and waits[-1] > waits[0]

            await wait_for(retried, timeout=30, interval=0.2, message="retries with back-off in the log")
            assert proc.popen is not None and proc.popen.poll() is None  # never exits for want of its database

            ferret = FerretDB(tmp_path / "ferretdb", port=db_port).start()
            await procs.ready("identity", timeout=90)
            r = await http.post("/v1/accounts", json={"email": "a@clinic.org", "password": "correct horse 42",
                                                      "name": "Dr A", "kind": "practitioner"})
            assert r.status_code == 201, r.text
            r = await http.post("/v1/auth/token", json={"email": "a@clinic.org", "password": "correct horse 42"})
            assert r.status_code == 200, r.text
    finally:
        procs.stop_all()
        if ferret is not None:
            ferret.stop()
        await delete_broker_objects(amqp_url, queues=[f"identity.{exchange}", f"identity.{exchange}.dlq",
                                                      f"{exchange}.stream"],
                                    exchanges=[exchange, f"{exchange}.dlx"])


async def test_the_wrapper_answers_health_at_once_and_starts_the_app_when_the_database_answers() -> None:
    """The same, in-process and without a database: a ping that fails twice, then waits to be let through."""
    events: list[str] = []
    pings: list[int] = []
    gate = asyncio.Event()

    async def ping(url: str) -> bool:
        pings.append(1)
        if len(pings) <= 2:
            return False
        await gate.wait()
        return True

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        events.append("started")
        yield
        events.append("stopped")

    inner = FastAPI(lifespan=lifespan)

    @inner.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    wrapper = WaitForDatabase(inner, url="mongodb://nowhere/", service="test", retry_max=0.01, ping=ping)
    sent: list[dict[str, Any]] = []
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await inbox.put({"type": "lifespan.startup"})
    life = asyncio.create_task(wrapper({"type": "lifespan"}, inbox.get, send))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapper), base_url="http://t") as http:
        await wait_for(lambda: sent == [{"type": "lifespan.startup.complete"}], timeout=5)
        await wait_for(lambda: len(pings) == 3, timeout=5, message="two failed pings, a third waiting")
        assert (await http.get("/healthz")).status_code == 200
        r = await http.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"] == {"database": False}
        assert (await http.get("/v1/anything")).status_code == 503
        assert events == [] and life.done() is False
        gate.set()
        await wait_for(wrapper.started.is_set, timeout=5, message="started once the database answered")
        assert events == ["started"]
        assert (await http.get("/readyz")).json() == {"status": "ready"}
    await inbox.put({"type": "lifespan.shutdown"})
    await life
    assert events == ["started", "stopped"] and sent[-1] == {"type": "lifespan.shutdown.complete"}


async def test_a_start_that_fails_is_retried_not_fatal() -> None:
    starts: list[int] = []

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        starts.append(1)
        if len(starts) < 3:
            raise ConnectionError("the database went away during the start")
        yield

    async def ping(url: str) -> bool:
        return True

    wrapper = WaitForDatabase(FastAPI(lifespan=lifespan), url="mongodb://x/", service="test", retry_max=0.01,
                              ping=ping)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await inbox.put({"type": "lifespan.startup"})
    life = asyncio.create_task(wrapper({"type": "lifespan"}, inbox.get, send))
    await wait_for(wrapper.started.is_set, timeout=5, message="started at the third try")
    assert len(starts) == 3
    await inbox.put({"type": "lifespan.shutdown"})
    await life
