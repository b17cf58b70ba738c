"""The audit service: the accounting of disclosures and the access log, per patient, hash-chained."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from clinishare_shared.app import service_app
from clinishare_shared.auth import KeyProvider
from clinishare_shared.bus.base import EventBus
from clinishare_shared.runtime import Infra

from clinishare_audit import events
from clinishare_audit.api import disclosures
from clinishare_audit.settings import AuditSettings
from clinishare_audit.store import AuditStore


def create_app(settings: AuditSettings | None = None, *, bus: EventBus | None = None, mongo_client: Any = None,
               keys: KeyProvider | None = None) -> FastAPI:
    settings = settings or AuditSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        infra = Infra(settings, bus=bus, mongo_client=mongo_client, keys=keys)
        await infra.open()
        try:
            projection = await infra.open_projection()
            store = AuditStore(infra.db)
            await store.ensure_indexes()
            infra.expose(app, store=store, projection=projection)
            await infra.start_consumer(events.consumed(store, projection))
            yield
        finally:
            await infra.close()

    app = service_app(title="Clinishare audit",
                      description="The accounting of disclosures and the access log, per patient, hash-chained.",
                      lifespan=lifespan)
    app.include_router(disclosures.router)
    return app
