"""The fault stack: a private RabbitMQ node, one FerretDB shared by every replica (each service its own
database), the topology declared before anything runs, TWO replicas of every service as separate
processes behind the gateway (round-robin), a real SMTP server on loopback, and an analytics queue bound
to every event (``#``). One stack serves every scenario of the module, in file order; notify is started
by the first scenario that needs it (scenario 5 starts it late on purpose)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from clinishare_shared.processes import PrivateRabbit, Processes, SmtpServer, free_port, start_ferretdb
from clinishare_shared.routes import SERVICES

ANALYTICS = "analytics.faults"
REPLICAS = 2


@dataclass
class FaultStack:
    rabbit: PrivateRabbit
    procs: Processes
    smtp: SmtpServer
    mongodb_url: str
    databases: dict[str, str]
    gateway: str
    notify_started: bool = False
    analytics: Counter[str] = field(default_factory=Counter)
    people: dict[str, Any] = field(default_factory=dict)
    mail_seen: set[str] = field(default_factory=set)  # Message-IDs counted by earlier scenarios

    def replicas(self, service: str) -> list[str]:
        return [f"{service}-{i}" for i in range(1, REPLICAS + 1)]

    async def start_notify(self) -> None:
        if not self.notify_started:
            for name in self.replicas("notify"):
                self.procs.start(name)
            await self.procs.ready(*self.replicas("notify"))
            self.notify_started = True

    def db(self, client: AsyncMongoClient[Any], service: str) -> Any:
        return client[self.databases[service]]

    async def drain_analytics(self) -> None:
        """Count every message the analytics queue holds by message id (no ack to lose, no redelivery)."""
        connection = await aio_pika.connect_robust(self.rabbit.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(ANALYTICS, passive=True)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                self.analytics[message.message_id or "?"] += 1


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    # kept after the run (pytest prunes its own temp directories): the logs of every process are here
    base = Path(tempfile.mkdtemp(prefix="clinishare-faults-"))
    print(f"fault suite: logs and data in {base}", flush=True)
    amqp_port = free_port()  # free ports, not fixed ones: two runs on one machine never collide
    dist_port = next(p for p in iter(free_port, None) if p != amqp_port)
    rabbit = PrivateRabbit(base / "rabbit", node=f"clinishare-fault-{os.getpid()}@localhost", port=amqp_port,
                           dist_port=dist_port)
    rabbit.start()
    try:
        ferret = start_ferretdb(base / "ferretdb")
    except BaseException:
        rabbit.stop()
        raise
    smtp = SmtpServer().start()
    unique = uuid.uuid4().hex[:8]
    databases = {name: f"faults_{unique}_{name}" for name in SERVICES}
    procs = Processes(logs=base)
    ports = {f"{s}-{i}": free_port()
             for s in [*SERVICES, "gateway"] for i in range(1, REPLICAS + 1)}
    common = {**os.environ, "AMQP_URL": rabbit.url, "MONGODB_URL": ferret.url, "LOG_JSON": "true",
              "JWKS_URL": f"http://127.0.0.1:{ports['identity-1']}/.well-known/jwks.json"}
    # every relay is kicked by its own writes; the poll only matters for another replica's leftovers
    common.update({f"{s.upper()}_OUTBOX_POLL_INTERVAL": "1.0" for s in SERVICES})
    per_service: dict[str, dict[str, str]] = {
        # the default lease: a pass on this loaded machine can outlast a shorter one, and a replica taking
        # over a lease whose holder is still finishing publishes its events again
        "charts": {"CHARTS_OUTBOX_LEASE_SECONDS": "30"},
        "notify": {"NOTIFY_SMTP_HOST": "127.0.0.1", "NOTIFY_SMTP_PORT": str(smtp.port),
                   "NOTIFY_EMAIL_BACKOFF_BASE_SECONDS": "0.5", "NOTIFY_EMAIL_BACKOFF_MAX_SECONDS": "2",
                   "NOTIFY_EMAIL_POLL_SECONDS": "5", "NOTIFY_EMAIL_LEASE_SECONDS": "15"},
    }
    gateway_env = {**common, "GATEWAY_PORT": str(ports["gateway-1"])}
    for service in SERVICES:
        env = {**common, f"{service.upper()}_MONGODB_DATABASE": databases[service], **per_service.get(service, {})}
        if service in ("charts", "documents", "forms"):
            env[f"{service.upper()}_IDENTITY_URL"] = f"http://127.0.0.1:{ports['identity-1']}"
        for i in range(1, REPLICAS + 1):
            name = f"{service}-{i}"
            procs.add(name, f"clinishare_{service}", {**env, f"{service.upper()}_PORT": str(ports[name])},
                      port=ports[name])
        gateway_env[f"GATEWAY_{service.upper()}_URL"] = ",".join(
            f"http://127.0.0.1:{ports[f'{service}-{i}']}" for i in range(1, REPLICAS + 1))
    procs.add("gateway", "clinishare_gateway", gateway_env, port=ports["gateway-1"])
    stack = FaultStack(rabbit=rabbit, procs=procs, smtp=smtp, mongodb_url=ferret.url, databases=databases,
                       gateway=f"http://127.0.0.1:{ports['gateway-1']}")
    try:
        # topology before traffic: every queue (notify's too) exists before any service publishes
        topo = subprocess.run([sys.executable, "-m", "clinishare_shared.topology"], env={**common, **rabbit.env},
                              capture_output=True, text=True, timeout=180)
        assert topo.returncode == 0, topo.stderr[-2000:]
        asyncio.run(_declare_analytics(rabbit.url))
        for service in SERVICES:
            if service != "notify":
                for name in stack.replicas(service):
                    procs.start(name)
        procs.start("gateway")
        asyncio.run(procs.ready(*[n for s in SERVICES if s != "notify" for n in stack.replicas(s)]))
        asyncio.run(procs.ready("gateway", path="/healthz"))  # /readyz waits for notify, started later
        yield stack
    finally:
        procs.stop_all()
        smtp.stop()
        rabbit.stop()
        ferret.stop()


async def _declare_analytics(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(ANALYTICS, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind("clinishare.events", routing_key="#")


