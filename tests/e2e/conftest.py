"""The e2e stack: the five services as separate processes on the real RabbitMQ behind the gateway, or
the one-process default of `make run`. Story tests talk HTTP to `stack.url` and nothing else.

Each process keeps its own database in its own in-process MongoDB engine (or on MONGODB_URL with a unique
database name), which is exactly the production split: no service reads another's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from aiosmtpd.controller import Controller

from clinishare_shared.processes import Mailbox, free_port
from clinishare_shared.routes import SERVICES
from clinishare_shared.testing import LiveServer, wait_for


@dataclass
class Stack:
    mode: str
    url: str
    mailbox: Mailbox
    logs: dict[str, Path] = field(default_factory=dict)
    processes: dict[str, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def mailbox() -> Any:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    controller.stop()


async def _processes(tmp_path: Path, amqp_url: str, unique: str, mailbox: Mailbox,
                     mongodb_url: str | None) -> AsyncIterator[Stack]:
    ports = {name: free_port() for name in [*SERVICES, "gateway"]}
    exchange = f"e2e.{unique}"
    base_env = {
        **os.environ,
        "AMQP_URL": amqp_url,
        # each process on its own in-process engine unless MONGODB_URL is set: allowed for tests only
        "EMBEDDED_ENGINES": "true",
        "EVENT_EXCHANGE": exchange,
        "JWKS_URL": f"http://127.0.0.1:{ports['identity']}/.well-known/jwks.json",
        "LOG_JSON": "true",
        "NOTIFY_SMTP_HOST": "127.0.0.1",
        "NOTIFY_SMTP_PORT": str(mailbox.port),  # type: ignore[attr-defined]
        "NOTIFY_PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['gateway']}",
    }
    for name in SERVICES:
        base_env[f"{name.upper()}_PORT"] = str(ports[name])
        base_env[f"{name.upper()}_QUEUE_NAME"] = f"{name}.{exchange}"
        if name in ("charts", "documents", "forms"):  # the services that ask identity directly
            base_env[f"{name.upper()}_IDENTITY_URL"] = f"http://127.0.0.1:{ports['identity']}"
        base_env[f"GATEWAY_{name.upper()}_URL"] = f"http://127.0.0.1:{ports[name]}"
        if mongodb_url:
            base_env[f"{name.upper()}_MONGODB_DATABASE"] = f"e2e_{unique}_{name}"
    if mongodb_url:
        base_env["MONGODB_URL"] = mongodb_url
    base_env["GATEWAY_PORT"] = str(ports["gateway"])

    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    try:
        for name in [*SERVICES, "gateway"]:
            logs[name] = tmp_path / f"{name}.log"
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"clinishare_{name}"], env=base_env,
                stdout=logs[name].open("wb"), stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient() as client:
            for name in [*SERVICES, "gateway"]:
                async def ready(name: str = name) -> bool:
                    if procs[name].poll() is not None:
                        raise AssertionError(f"{name} exited:\n{logs[name].read_text()[-3000:]}")
                    try:
                        r = await client.get(f"http://127.0.0.1:{ports[name]}/readyz", timeout=2)
                        return r.status_code == 200
                    except httpx.HTTPError:
                        return False

                await wait_for(ready, timeout=60, interval=0.1, message=f"{name} ready")
        yield Stack(mode="processes", url=f"http://127.0.0.1:{ports['gateway']}", mailbox=mailbox, logs=logs,
                    processes=procs, ports=ports)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            for name in SERVICES:
                for queue in (f"{name}.{exchange}", f"{name}.{exchange}.dlq"):
                    try:
                        await channel.queue_delete(queue)
                    except Exception:
                        channel = await connection.channel()
            try:
                await channel.queue_delete(f"{exchange}.stream")
            except Exception:
                channel = await connection.channel()
            for ex in (exchange, f"{exchange}.dlx"):
                try:
                    await channel.exchange_delete(ex)
                except Exception:
                    channel = await connection.channel()


async def _allinone(mailbox: Mailbox, mongodb_url: str | None, unique: str) -> AsyncIterator[Stack]:
    from clinishare_allinone.system import ServiceOverrides, create_system
    from clinishare_notify.settings import NotifySettings

    notify = NotifySettings(smtp_host="127.0.0.1", smtp_port=mailbox.port)  # type: ignore[attr-defined]
    system = create_system(ServiceOverrides(notify=notify), mongodb_url=mongodb_url, database_prefix=f"e2e_{unique}")
    async with LiveServer(system) as server:
        yield Stack(mode="allinone", url=server.url, mailbox=mailbox)


@pytest.fixture(params=["allinone", "processes"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path, unique: str, mailbox: Mailbox,
                mongodb_url: str | None, mongo_client: Any) -> AsyncIterator[Stack]:
    # every service's database on the session's engine, named for this test and dropped after it
    mongo_client.test_databases.extend(f"e2e_{unique}_{name}" for name in SERVICES)
    if request.param == "processes":
        amqp_url = request.getfixturevalue("amqp_url")
        gen = _processes(tmp_path, amqp_url, unique, mailbox, mongodb_url)
    else:
        gen = _allinone(mailbox, mongodb_url, unique)
    stack = await gen.__anext__()
    try:
        yield stack
    finally:
        try:
            await gen.__anext__()
        except StopAsyncIteration:
            pass
        if request.node.rep_call_failed if hasattr(request.node, "rep_call_failed") else False:
            for name, path in stack.logs.items():
                print(f"----- {name} log (tail) -----\n{path.read_text()[-4000:]}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call_failed = rep.failed  # type: ignore[attr-defined]


class Api:
    """A thin client for the stories: one signed-in person."""

    def __init__(self, client: httpx.AsyncClient, token: str, account: dict[str, Any]) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.account = account
        self.id = account["id"]

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.headers, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.post(path, headers=self.headers, **kw)

    async def put(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.put(path, headers=self.headers, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(path, headers=self.headers, **kw)


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        yield client


@pytest.fixture
def people(http: httpx.AsyncClient, unique: str) -> Any:
    async def signup(name: str, kind: str = "practitioner") -> Api:
        email = f"{name.lower().replace(' ', '.')}.{unique}@harbour-clinic.org"
        r = await http.post("/v1/accounts", json={"email": email, "password": "correct horse 42",
                                                   "name": name, "kind": kind})
        assert r.status_code == 201, r.text
        t = await http.post("/v1/auth/token", json={"email": email, "password": "correct horse 42"})
        assert t.status_code == 200, t.text
        return Api(http, t.json()["access_token"], r.json())

    async def patient(by: Api, name: str) -> tuple[str, Api]:
        email = f"{name.lower().replace(' ', '.')}.{unique}@patient-mail.org"
        r = await by.post("/v1/patients", json={"name": name, "email": email})
        assert r.status_code == 201, r.text
        patient_id = r.json()["id"]
        inv = await by.post(f"/v1/patients/{patient_id}/portal-invite")
        assert inv.status_code == 201, inv.text
        act = await http.post("/v1/portal/activate", json={"invite_token": inv.json()["invite_token"],
                                                            "password": "patient pass 42"})
        assert act.status_code == 201, act.text
        t = await http.post("/v1/auth/token", json={"email": email, "password": "patient pass 42"})
        assert t.status_code == 200, t.text
        return patient_id, Api(http, t.json()["access_token"], act.json())

    class People:
        pass

    p = People()
    p.signup = signup  # type: ignore[attr-defined]
    p.patient = patient  # type: ignore[attr-defined]
    return p


async def _eventually(fetch: Any, check: Any, *, timeout: float = 20.0, message: str = "condition") -> Any:
    """Re-fetch until ``check(response)`` holds: projections and notifications follow events."""
    last: dict[str, Any] = {}

    async def probe() -> Any:
        last["r"] = await fetch()
        return check(last["r"])

    try:
        await wait_for(probe, timeout=timeout, interval=0.05, message=message)
        return last["r"]
    except AssertionError:
        r = last.get("r")
        raise AssertionError(f"{message}; last response: {getattr(r, 'status_code', r)} "
                             f"{getattr(r, 'text', '')[:500]}") from None


@pytest.fixture
def eventually() -> Any:
    return _eventually
