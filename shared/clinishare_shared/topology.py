"""Topology before traffic: ``python -m clinishare_shared.topology``.

One idempotent step, run before the services (by ``make run`` when ``AMQP_URL`` is set, by compose and by
a Kubernetes Job), declares the event exchange, the dead-letter exchange, every consuming service's
quorum queue with its bindings and its dead-letter queue, and the analytics stream. So no event is ever
routed past a consumer that is not running yet: a service started late finds its queue full, not empty.

The delivery limit and dead-lettering are RabbitMQ **policies**, one per service queue (exact-name
pattern), not queue arguments: a policy can be changed at any time and never makes a later declaration
fail with PRECONDITION_FAILED. Policies are not part of AMQP, so they are applied through the management
HTTP API when ``RABBITMQ_MANAGEMENT_URL`` is set (compose, Kubernetes), else with ``rabbitmqctl`` on this
machine (``RABBITMQ_NODENAME`` picks the node, ``RABBITMQCTL`` the script), else skipped with a warning (the consumers still enforce
the limit themselves and dead-letter with the reason).

Queue names, delivery limits, the exchange and the stream come from each service's own settings (the
same environment variables the services read), so the step and the services always agree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import structlog

from clinishare_shared.bus.rabbit import declare_service_queue, dlx_name
from clinishare_shared.bus.stream import StreamSpec, declare_stream
from clinishare_shared.settings import ServiceSettings

log = structlog.get_logger("clinishare.topology")

POLICY_PREFIX = "clinishare-queue."


def consumed_types() -> dict[str, list[str]]:
    """Each consuming service -> the event types it binds (the same handler maps the services build)."""
    from clinishare_shared.projection import IdentityProjection

    projection = IdentityProjection(None)
    identity_facts = sorted(projection.handlers)
    from clinishare_notify.events import consumed as notify_consumed
    from clinishare_notify.settings import NotifySettings

    from clinishare_audit.events import consumed as audit_consumed

    notify = notify_consumed(projection, store=None, settings=NotifySettings())  # type: ignore[arg-type]
    return {"charts": identity_facts, "documents": identity_facts, "forms": identity_facts,
            "notify": sorted(notify),
            "audit": sorted(audit_consumed(None, projection))}  # type: ignore[arg-type]


def service_settings(service: str) -> ServiceSettings:
    import importlib

    module = importlib.import_module(f"clinishare_{service}.settings")
    cls = next(v for k, v in vars(module).items()
               if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
               and k.lower() == f"{service}settings")
    return cls()


@dataclass(frozen=True)
class QueueSpec:
    service: str
    queue: str
    routing_keys: list[str]
    delivery_limit: int


@dataclass(frozen=True)
class Policy:
    name: str
    pattern: str
    definition: dict[str, Any]


def queue_policy(queue: str, exchange: str, delivery_limit: int) -> Policy:
    """Dead-letter into ``queue``'s DLQ, and RabbitMQ's own delivery limit. The consumer dead-letters a
    message whose handler failed ``delivery_limit`` times itself (with the reason); the broker's limit is
    the net under it for deliveries the consumer never finished (a replica killed mid-message): RabbitMQ
    3.10 dead-letters once the count EXCEEDS the policy's value."""
    return Policy(name=f"{POLICY_PREFIX}{queue}", pattern=f"^{re.escape(queue)}$",
                  definition={"delivery-limit": delivery_limit, "dead-letter-exchange": dlx_name(exchange),
                              "dead-letter-routing-key": queue})


def plan() -> tuple[ServiceSettings, list[QueueSpec]]:
    base = ServiceSettings()
    specs = []
    for service, keys in consumed_types().items():
        s = service_settings(service)
        specs.append(QueueSpec(service=service, queue=s.queue, routing_keys=keys, delivery_limit=s.delivery_limit))
    return base, specs


async def declare(url: str, exchange: str, queues: list[QueueSpec], stream: StreamSpec | None) -> None:
    """Declare everything (idempotent); queues that exist with other arguments are kept as they are."""
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        for spec in queues:
            channel = await connection.channel()
            channel, _ = await declare_service_queue(connection, channel, exchange, spec.queue, spec.routing_keys)
            await channel.close()
            log.info("queue_declared", service=spec.service, queue=spec.queue, bindings=len(spec.routing_keys))
        if stream is not None:
            await declare_stream(connection, exchange=exchange, spec=stream)


def apply_policies(policies: list[Policy], *, management_url: str | None = None, node: str | None = None,
                   amqp_url: str | None = None) -> str:
    """Set the policies; returns how (``management``, ``rabbitmqctl`` or ``skipped``)."""
    vhost = (urlsplit(amqp_url).path.lstrip("/") if amqp_url else "") or "/"
    if management_url:
        import httpx

        parts = urlsplit(management_url)
        auth = (parts.username, parts.password) if parts.username else None
        base = management_url.replace(f"{parts.username}:{parts.password}@", "") if auth else management_url
        with httpx.Client(auth=auth, timeout=10) as client:  # type: ignore[arg-type]
            for p in policies:
                r = client.put(f"{base.rstrip('/')}/api/policies/{quote(vhost, safe='')}/{quote(p.name, safe='')}",
                               json={"pattern": p.pattern, "definition": p.definition, "apply-to": "queues",
                                     "priority": 10})
                r.raise_for_status()
        return "management"
    ctl = os.environ.get("RABBITMQCTL") or shutil.which("rabbitmqctl")
    if ctl:
        node_args = ["-n", node] if node else []
        for p in policies:
            subprocess.run([ctl, *node_args, "set_policy", "-p", vhost, "--apply-to", "queues", "--priority", "10",
                            p.name, p.pattern, json.dumps(p.definition)], check=True, capture_output=True, timeout=60)
        return "rabbitmqctl"
    log.warning("policies_not_applied", reason="no RABBITMQ_MANAGEMENT_URL and no rabbitmqctl",
                policies=[p.name for p in policies])
    return "skipped"


def clear_policies(names: list[str], *, node: str | None = None, vhost: str = "/") -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        for name in names:
            subprocess.run([ctl, *(["-n", node] if node else []), "clear_policy", "-p", vhost, name],
                           capture_output=True, timeout=60)


async def run(*, with_policies: bool = True) -> dict[str, Any]:
    base, queues = plan()
    if not base.amqp_url:
        raise SystemExit("AMQP_URL is not set: nothing to declare (the in-memory bus needs no topology)")
    await declare(base.amqp_url, base.event_exchange, queues, base.stream)
    how = "skipped"
    if with_policies:
        how = await asyncio.to_thread(
            apply_policies, [queue_policy(q.queue, base.event_exchange, q.delivery_limit) for q in queues],
            management_url=os.environ.get("RABBITMQ_MANAGEMENT_URL"), node=os.environ.get("RABBITMQ_NODENAME"),
            amqp_url=base.amqp_url)
    summary = {"exchange": base.event_exchange, "queues": [q.queue for q in queues], "stream": base.stream.name,
               "policies": how}
    log.info("topology_declared", **summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    from clinishare_shared.logging import configure_logging

    parser = argparse.ArgumentParser(prog="python -m clinishare_shared.topology", description=__doc__.split("\n")[0])
    parser.add_argument("--no-policies", action="store_true", help="declare only; leave policies alone")
    args = parser.parse_args(argv)
    configure_logging(service="topology", level=os.environ.get("LOG_LEVEL", "INFO"), json=True)
    summary = asyncio.run(run(with_policies=not args.no_policies))
    print(json.dumps(summary), file=sys.stdout)


if __name__ == "__main__":
    main()
