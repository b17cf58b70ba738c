"""The notify service: consumes share events, keeps inboxes, e-mails notices without PHI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from clinishare_shared.app import service_app
from clinishare_shared.auth import KeyProvider
from clinishare_shared.bus.base import EventBus
from clinishare_shared.runtime import Infra

from clinishare_notify import service
from clinishare_notify.api import notifications, preferences
from clinishare_notify.delivery import EmailWorker
from clinishare_notify.events import consumed
from clinishare_notify.mailer import SmtpMailer
from clinishare_notify.settings import NotifySettings
from clinishare_notify.store import NotifyStore


def create_app(settings: NotifySettings | None = None, *, bus: EventBus | None = None, mongo_client: Any = None,
               keys: KeyProvider | None = None) -> FastAPI:
    settings = settings or NotifySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        infra = Infra(settings, bus=bus, mongo_client=mongo_client, keys=keys)
        await infra.open()
        worker: EmailWorker | None = None
        try:
            projection = await infra.open_projection()
            store = NotifyStore(infra.db)
            await store.ensure_indexes()
            await store.index_refs()  # once: notices written before the lookup existed (before consuming)
            mailer = SmtpMailer(settings) if settings.email_enabled else None
            worker = EmailWorker(store=store, projection=projection, mailer=mailer, settings=settings,
                                 foreground=infra.foreground)
            infra.expose(app, store=store, projection=projection, email_worker=worker)
            worker.start()
            # a notify whose projection is empty replays identity's facts from the stream, then sends the
            # e-mails it skipped for want of an address
            await infra.start_consumer(
                consumed(projection, store=store, settings=settings, on_created=worker.wake, emails=worker),
                catch_up=projection.handlers,
                after_catch_up=lambda: service.reopen_all_known(store=store, projection=projection))
            yield
        finally:
            if worker is not None:
                await worker.stop()
            await infra.close()

    app = service_app(title="Clinishare notify",
                      description="In-app notification inboxes and e-mail notices of shares (no PHI).",
                      lifespan=lifespan)
    app.include_router(notifications.router)
    app.include_router(preferences.router)
    return app
