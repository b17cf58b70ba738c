"""The charts service: ``create_app`` builds the app; its lifespan opens everything (nothing at import)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from clinishare_charts import events, service
from clinishare_charts.api import chart_shares, charts
from clinishare_charts.settings import ChartsSettings
from clinishare_charts.store import ChartStore
from clinishare_shared.app import service_app
from clinishare_shared.auth import KeyProvider
from clinishare_shared.bus.base import EventBus
from clinishare_shared.directory import Directory
from clinishare_shared.mongo import now_ms
from clinishare_shared.runtime import Infra
from clinishare_shared.sweeper import Sweeper


def create_app(settings: ChartsSettings | None = None, *, bus: EventBus | None = None, mongo_client: Any = None,
               keys: KeyProvider | None = None, directory: Directory | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conf = settings or ChartsSettings()
        infra = Infra(conf, bus=bus, mongo_client=mongo_client, keys=keys)
        await infra.open()
        try:
            projection = await infra.open_projection()
            store = ChartStore(infra.db, kick=infra.kick, claims=infra)
            await store.ensure_indexes()
            await store.ensure_lookups()
            await infra.start_relay(ChartStore.outbox_collections)
            # an empty or behind identity projection catches up (identity's snapshot, else the stream)
            await infra.start_consumer(events.consumed(projection), catch_up=projection.handlers,
                                       snapshot=infra.directory(directory, conf.identity_url))
            sweeper = Sweeper("chart-grants", lambda: service.expire_due(store=store, now=now_ms()),
                              interval=conf.expiry_sweep_seconds)
            sweeper.start()
            infra.expose(app, store=store, projection=projection,
                         directory=infra.directory(directory, conf.identity_url), sweeper=sweeper)
            try:
                yield
            finally:
                await sweeper.stop()
        finally:
            await infra.close()

    app = service_app(title="Clinishare charts",
                      description="Smart Charts, recipient notes and chart share grants", lifespan=lifespan)
    app.include_router(charts.router)
    app.include_router(chart_shares.router)
    return app
