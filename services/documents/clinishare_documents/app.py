"""The documents service's application: ``create_app`` wires settings, infra, projection and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from clinishare_shared.app import service_app
from clinishare_shared.auth import KeyProvider
from clinishare_shared.bus.base import EventBus
from clinishare_shared.directory import Directory
from clinishare_shared.runtime import Infra

from clinishare_shared.mongo import now_ms
from clinishare_shared.sweeper import Sweeper

from clinishare_documents import service
from clinishare_documents.api import documents, labels, portal
from clinishare_documents.events import consumed
from clinishare_documents.settings import DocumentsSettings
from clinishare_documents.store import ACCESSES, DOCUMENTS, EXPIRIES, DocumentStore


def create_app(settings: DocumentsSettings | None = None, *, bus: EventBus | None = None, mongo_client: Any = None,
               keys: KeyProvider | None = None, directory: Directory | None = None) -> FastAPI:
    settings = settings or DocumentsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        infra = Infra(settings, bus=bus, mongo_client=mongo_client, keys=keys)
        await infra.open()
        try:
            projection = await infra.open_projection()
            store = DocumentStore(infra.db, bucket=settings.gridfs_bucket, kick=infra.kick)
            await store.ensure_indexes()
            await infra.start_relay([DOCUMENTS, ACCESSES, EXPIRIES])
            # an empty or behind identity projection catches up (identity's snapshot, else the stream)
            await infra.start_consumer(consumed(projection), catch_up=projection.handlers,
                                       snapshot=infra.directory(directory, settings.identity_url))
            lease = timedelta(seconds=settings.label_lease_seconds)
            sweeper = Sweeper("document-shares", lambda: service.expire_shares(store=store, now=now_ms()),
                              interval=settings.expiry_sweep_seconds)
            # its first run is at start-up: a label call a crash left unfinished is rolled forward
            label_sweeper = Sweeper("label-calls", lambda: service.settle_label_calls(store=store, now=now_ms(),
                                                                                      lease=lease),
                                    interval=settings.label_sweep_seconds)
            sweeper.start()
            label_sweeper.start()
            infra.expose(app, settings=settings, store=store, projection=projection,
                         directory=infra.directory(directory, settings.identity_url),
                         sweeper=sweeper, label_sweeper=label_sweeper)
            try:
                yield
            finally:
                await label_sweeper.stop()
                await sweeper.stop()
        finally:
            await infra.close()

    app = service_app(title="Clinishare documents",
                      description="Documents (GridFS content), labels and document shares.", lifespan=lifespan)
    # labels before documents: POST /v1/documents/labels must not be taken for a document path
    app.include_router(labels.router)
    app.include_router(documents.router)
    app.include_router(portal.router)
    return app
