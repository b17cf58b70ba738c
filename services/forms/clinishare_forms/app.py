"""The forms service (SmartForms): form definitions and their sharing, assignments, submissions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from clinishare_forms.api import assignments, forms, portal, submissions
from clinishare_forms.events import consumed
from clinishare_forms.settings import FormsSettings
from clinishare_forms.store import OUTBOX_COLLECTIONS, FormStore
from clinishare_shared.app import service_app
from clinishare_shared.auth import KeyProvider
from clinishare_shared.bus.base import EventBus
from clinishare_shared.directory import Directory
from clinishare_shared.runtime import Infra


def create_app(settings: FormsSettings | None = None, *, bus: EventBus | None = None, mongo_client: Any = None,
               keys: KeyProvider | None = None, directory: Directory | None = None) -> FastAPI:
    settings = settings or FormsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        infra = Infra(settings, bus=bus, mongo_client=mongo_client, keys=keys)
        await infra.open()
        try:
            store = FormStore(infra.db, kick=infra.kick)
            projection = await infra.open_projection()
            await store.ensure_indexes()
            infra.expose(app, store=store, projection=projection,
                         directory=infra.directory(directory, settings.identity_url))
            await infra.start_relay(OUTBOX_COLLECTIONS)
            # an empty or behind identity projection catches up (identity's snapshot, else the stream)
            await infra.start_consumer(consumed(projection), catch_up=projection.handlers,
                                       snapshot=infra.directory(directory, settings.identity_url))
            yield
        finally:
            await infra.close()

    app = service_app(
        title="Clinishare forms",
        description="SmartForms: forms, their sharing options, assignments to patients and submissions.",
        lifespan=lifespan,
    )
    app.include_router(forms.router)
    app.include_router(assignments.router)
    app.include_router(portal.router)
    app.include_router(submissions.router)
    return app
