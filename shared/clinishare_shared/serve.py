"""Run one service as its own process (``python -m clinishare_<service>``).

Everything comes from the service's settings class: where it listens (``<PREFIX>HOST``/``<PREFIX>PORT``),
its database and broker. A standalone service refuses to start without ``MONGODB_URL`` and ``AMQP_URL``
(it would otherwise run on the in-process engine and lose its data at exit); only tests and the all-in-one
process use the embedded engines, with ``EMBEDDED_ENGINES=true``, and that is logged.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
import uvicorn
from pydantic import ValidationError

from clinishare_shared.logging import configure_logging
from clinishare_shared.observability import setup_tracing
from clinishare_shared.settings import ProcessSettings, ServiceSettings

S = TypeVar("S", bound=ProcessSettings)
log = structlog.get_logger("clinishare.serve")


def load_settings(settings_cls: type[S], *, service: str) -> S:
    """The settings from the environment, or exit 2 with one JSON log line naming what is wrong."""
    try:
        return settings_cls()
    except ValidationError as exc:
        configure_logging(service=service)
        errors = [{"setting": ".".join(str(p) for p in e["loc"]) or "environment", "error": e["msg"]}
                  for e in exc.errors(include_input=False, include_url=False)]
        log.error("settings_invalid", errors=errors)
        raise SystemExit(2) from None


def refuse_embedded(settings: ServiceSettings) -> None:
    """Exit 2 when MONGODB_URL or AMQP_URL is missing, unless embedded engines were asked for."""
    missing = settings.missing_servers()
    if missing and not settings.embedded_engines:
        log.error("refusing_to_start", missing=missing,
                  detail="a standalone service needs a real MongoDB and RabbitMQ; set "
                  + " and ".join(missing) + " (EMBEDDED_ENGINES=true allows in-process engines, for tests)")
        raise SystemExit(2)
    if missing:
        log.warning("embedded_engines_in_use", missing=missing, detail="data lives only as long as this process")


# how every process of ours serves HTTP; server_header=False: uvicorn would name itself in every response
UVICORN_OPTIONS: dict[str, Any] = {"log_config": None, "access_log": False, "lifespan": "on", "server_header": False}


class FreezeAfterStartup:
    """ASGI wrapper: once the application has started, everything it holds by then (modules, classes, the
    app, settings, schemas: most of a process's objects) is moved out of the cyclic garbage collector's
    reach (``gc.freeze``), so a full collection walks only what requests and events create. Those full
    collections are the long pauses of a Python service: they stop every request and event of the
    process while they walk the whole heap (measured: notify's were 71-81 ms during a stream of shares on
    the in-process engine, and set the p99 of share -> notification; with the freeze none over 5 ms)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)

        async def started(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()  # what start-up left behind goes first: frozen garbage would never be freed
                gc.freeze()
                log.info("gc_frozen_after_startup", objects=gc.get_freeze_count())
            await send(message)

        return await self.app(scope, receive, started)


def run(app: Any, settings: ProcessSettings) -> None:
    uvicorn.run(FreezeAfterStartup(app), host=settings.host, port=settings.port, **UVICORN_OPTIONS)


# an operator command of a service: (its database, its settings) -> what it did, printed as one JSON line
# (named after the command, unless it gives an "event" of its own)
Command = Callable[[Any, Any], Awaitable[dict[str, Any]]]


class CommandRefused(Exception):
    """An operator command that cannot run here: printed as ``<command>_refused`` with why, exit 2."""


def main(settings_cls: type[ServiceSettings], create_app: Callable[[Any], Any], commands: Mapping[str, Command],
         argv: list[str] | None = None) -> None:
    """``python -m clinishare_<name>`` serves; ``python -m clinishare_<name> <command>`` runs one of
    ``commands`` on the service's database (``MONGODB_URL``) and prints what it did as one JSON line, or
    ``<command>_refused`` with why (no database, or ``CommandRefused``) and exits 2."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        run_service(settings_cls, create_app)
        return
    service = settings_cls.model_fields["service_name"].default
    if len(args) != 1 or args[0] not in commands:
        print(f"usage: python -m clinishare_{service} [{' | '.join(commands)}]", file=sys.stderr)
        raise SystemExit(2)
    settings = load_settings(settings_cls, service=service)
    configure_logging(service=service, level=settings.log_level, json=settings.log_json)
    event = args[0].replace("-", "_")
    try:
        if not settings.mongodb_url:
            raise CommandRefused("MONGODB_URL is not set")
        done = asyncio.run(_command(commands[args[0]], settings))
    except CommandRefused as exc:
        print(json.dumps({"event": f"{event}_refused", "detail": str(exc)}))
        raise SystemExit(2) from None
    print(json.dumps({"event": event, **done}))


async def _command(command: Command, settings: ServiceSettings) -> dict[str, Any]:
    from clinishare_shared.mongo import open_client

    client = open_client(settings.mongodb_url)
    try:
        return await command(client[settings.database], settings)
    finally:
        await client.close()


def run_service(settings_cls: type[ServiceSettings], create_app: Callable[[Any], Any]) -> None:
    settings = load_settings(settings_cls, service=settings_cls.model_fields["service_name"].default)
    configure_logging(service=settings.service_name, level=settings.log_level, json=settings.log_json)
    refuse_embedded(settings)
    if setup_tracing(settings.service_name):
        log.info("tracing_exported", endpoint=os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
    app = create_app(settings)
    if settings.mongodb_url:
        # the database may not be up yet: serve at once (readiness says so), start the service when it answers
        from clinishare_shared.starting import WaitForDatabase

        app = WaitForDatabase(app, url=settings.mongodb_url, service=settings.service_name)
    run(app, settings)
