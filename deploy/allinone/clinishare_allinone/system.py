"""All six services in one process: the embedded default behind `make run`.

Each service is its own FastAPI application with its own database, exactly as when it runs alone; this
process only wires them: one bus (in-memory unless AMQP_URL), one Mongo client (the in-process engine
unless MONGODB_URL; every service still has its own database), identity's signing keys handed over
in-process instead of fetched as JWKS, and one ASGI dispatcher that routes paths as the gateway does.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from clinishare_audit.app import create_app as create_audit
from clinishare_audit.settings import AuditSettings
from clinishare_charts.app import create_app as create_charts
from clinishare_charts.settings import ChartsSettings
from clinishare_documents.app import create_app as create_documents
from clinishare_documents.settings import DocumentsSettings
from clinishare_forms.app import create_app as create_forms
from clinishare_forms.settings import FormsSettings
from clinishare_identity.app import create_app as create_identity
from clinishare_identity.settings import IdentitySettings
from clinishare_notify.app import create_app as create_notify
from clinishare_notify.settings import NotifySettings
from clinishare_shared.asyncapi import asyncapi_document
from clinishare_shared.auth import StaticKeyProvider
from clinishare_shared.bus.base import EventBus
from clinishare_shared.bus.memory import InMemoryBus
from clinishare_shared.directory import IdentityDirectory
from clinishare_shared.app import install_metrics
from clinishare_shared.middleware import RequestContextMiddleware
from clinishare_shared.mongo import InProcessMongoClient, open_client, server_engine
from clinishare_shared.apidocs import install_swagger_ui
from clinishare_shared.openapi import combined_openapi
from clinishare_shared.protection import SecurityHeadersMiddleware
from clinishare_shared.problems import install_problem_handlers, problem_response
from clinishare_shared.routes import SERVICES, browser_redirect, owner_of
from clinishare_shared.runtime import make_bus
from clinishare_shared.settings import ProcessSettings
from clinishare_web.app import create_app as create_web
from clinishare_web.settings import WebSettings

log = structlog.get_logger("clinishare.allinone")


class SystemSettings(ProcessSettings):
    """The all-in-one process: unprefixed ``HOST``, ``PORT``, ``LOG_LEVEL``, ``LOG_JSON``; each service inside
    it still reads its own prefixed settings."""

    model_config = SettingsConfigDict(extra="ignore")

    mongodb_url: str | None = Field(default=None, description="unset: the in-process engine (logged)")
    amqp_url: str | None = Field(default=None, description="unset: the in-memory bus (logged)")
    data_dir: Path = Field(default=Path("var"), description="where `make run` keeps FerretDB's data")
    ferretdb_port: int = Field(default=0, description="FerretDB's loopback port for `make run` (0: any free port)")


@dataclass
class ServiceOverrides:
    """Per-service settings, for tests that want, say, a small upload limit or a unique exchange."""

    identity: IdentitySettings | None = None
    charts: ChartsSettings | None = None
    documents: DocumentsSettings | None = None
    forms: FormsSettings | None = None
    notify: NotifySettings | None = None
    web: WebSettings | None = None
    audit: AuditSettings | None = None


class Dispatcher:
    """Routes each request to the service that owns its path; the system app's own routes (health, AsyncAPI,
    ...) and unknown `/v1/...` paths to the system app; everything else to the web console."""

    def __init__(self, system: FastAPI, services: dict[str, FastAPI], web: FastAPI | None = None) -> None:
        self.system = system
        self.services = services
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            target = browser_redirect(scope["method"], path, headers)
            if target is not None and self.web is not None:
                # an e-mail link to an API path opened in a browser: the console page of the same item
                query = scope.get("query_string", b"").decode("latin-1")
                response = RedirectResponse(target + (f"?{query}" if query else ""), status_code=303)
                await response(scope, receive, send)
                return
            owner = owner_of(path)
            if owner is not None:
                await self.services[owner](scope, receive, send)
                return
            if path.startswith("/_services/"):
                _, _, name, *rest = path.split("/", 3)
                if name in self.services:
                    sub = "/" + (rest[0] if rest else "")
                    await self.services[name]({**scope, "path": sub, "raw_path": sub.encode()}, receive, send)
                    return
            if self.web is not None and not path.startswith("/v1/") and not self._system_serves(scope):
                await self.web(scope, receive, send)
                return
        await self.system(scope, receive, send)

    def _system_serves(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] != Match.NONE for route in self.system.router.routes)


def create_system(overrides: ServiceOverrides | None = None, *, bus: EventBus | None = None,
                  mongo_client: Any = None, mongodb_url: str | None = None,
                  database_prefix: str | None = None) -> Dispatcher:
    """``database_prefix``: each service's database is ``<prefix>_<service>`` (tests share one server)."""
    overrides = overrides or ServiceOverrides()
    if database_prefix:
        overrides = ServiceOverrides(**{
            name: (getattr(overrides, name) or cls()).model_copy(update={"mongodb_database": f"{database_prefix}_{name}"})
            for name, cls in (("identity", IdentitySettings), ("charts", ChartsSettings),
                              ("documents", DocumentsSettings), ("forms", FormsSettings), ("notify", NotifySettings),
                              ("audit", AuditSettings))})
    identity_settings = overrides.identity or IdentitySettings()
    own_bus = bus is None
    bus = bus or make_bus(identity_settings)
    own_client = mongo_client is None
    client = mongo_client or open_client(mongodb_url or identity_settings.mongodb_url)

    identity = create_identity(identity_settings, bus=bus, mongo_client=client)
    keys = StaticKeyProvider(lambda: identity.state.jwks())
    # services ask identity directly through its HTTP API, here in-process
    directory = IdentityDirectory("http://identity.internal", transport=httpx.ASGITransport(app=identity))
    services: dict[str, FastAPI] = {
        "identity": identity,
        "charts": create_charts(overrides.charts or ChartsSettings(), bus=bus, mongo_client=client, keys=keys,
                                directory=directory),
        "documents": create_documents(overrides.documents or DocumentsSettings(), bus=bus, mongo_client=client,
                                      keys=keys, directory=directory),
        "forms": create_forms(overrides.forms or FormsSettings(), bus=bus, mongo_client=client, keys=keys,
                              directory=directory),
        "notify": create_notify(overrides.notify or NotifySettings(), bus=bus, mongo_client=client, keys=keys),
        "audit": create_audit(overrides.audit or AuditSettings(), bus=bus, mongo_client=client, keys=keys),
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if own_bus:
                await bus.start()
                stack.push_async_callback(bus.close)
            stack.push_async_callback(directory.aclose)
            # consumers first (so nothing published at start-up is unroutable), identity last
            for name in ["notify", "audit", "charts", "documents", "forms", "identity"]:
                await stack.enter_async_context(services[name].router.lifespan_context(services[name]))
            await stack.enter_async_context(dispatcher.web.router.lifespan_context(dispatcher.web))
            log.info("system_started", services=SERVICES, mongo=await server_engine(client), bus=type(bus).__name__)
            embedded = [name for name, on in (("MONGODB_URL", isinstance(client, InProcessMongoClient)),
                                              ("AMQP_URL", isinstance(bus, InMemoryBus))) if on]
            if embedded:
                log.warning("embedded_engines_in_use", missing=embedded,
                            detail="the all-in-one process runs on embedded engines: data lives as long as the process")
            app.state.bus = bus
            yield
        if own_client:  # a client handed in belongs to the caller (tests share one)
            await client.close()

    system = FastAPI(title="Clinishare (all-in-one)", lifespan=lifespan, openapi_url=None, docs_url=None,
                     redoc_url=None,
                     description="All six services in one process. Each service's own OpenAPI document is at "
                     "/_services/<name>/openapi.json; the event catalogue at /asyncapi.json.")
    system.add_middleware(SecurityHeadersMiddleware)  # the services protect their own paths
    system.add_middleware(RequestContextMiddleware, service="system")
    install_problem_handlers(system)
    # one process, one registry: every service's series, and every service's outbox
    install_metrics(system, relays=lambda: {name: getattr(getattr(app.state, "infra", None), "relay", None)
                                            for name, app in services.items()})

    @system.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @system.get("/readyz")
    async def readyz(request: Request) -> Any:
        checks = {name: all((await app.state.infra.ready()).values()) for name, app in services.items()}
        if all(checks.values()):
            return {"status": "ready", "checks": checks}
        return problem_response(503, detail="a service is not ready", checks=checks)

    @system.get("/openapi.json")
    async def openapi() -> dict[str, Any]:
        """The whole API in one document, merged from the services' own (the gateway serves the same)."""
        return combined_openapi({name: services[name].openapi() for name in SERVICES})

    @system.get("/asyncapi.json")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document()

    install_swagger_ui(system)

    dispatcher = Dispatcher(system, services)
    # The console calls the public API in-process, through this same dispatcher (httpx.ASGITransport):
    # no loopback socket, no need to know the listening port, and exactly the routing a client gets.
    web = create_web(overrides.web or WebSettings(), transport=httpx.ASGITransport(app=dispatcher))
    dispatcher.web = web
    return dispatcher
