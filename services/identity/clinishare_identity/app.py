"""The identity service's FastAPI app. Nothing connects at import time: the lifespan opens the database
and the bus, loads (or creates) the signing key and starts the outbox relay. Identity consumes no
events, so it starts no consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from clinishare_shared.app import service_app
from clinishare_shared.auth import KeyProvider, StaticKeyProvider, TokenVerifier
from clinishare_shared.bus.base import EventBus
from clinishare_shared.runtime import Infra
from clinishare_shared.sweeper import Sweeper
from clinishare_identity.api import accounts, connections, internal, offices, patients
from clinishare_identity.passwords import Passwords
from clinishare_identity.settings import IdentitySettings
from clinishare_identity.store import EVENT_COLLECTIONS, IdentityStore
from clinishare_identity.tokens import KeyRing, load_keys



class _OwnKeysFirst:
    """Identity trusts its own keys; keys handed in (``keys=``) are trusted as well, after them."""

    def __init__(self, own: KeyProvider, extra: KeyProvider | None) -> None:
        self.own, self.extra = own, extra

    async def key(self, kid: str) -> Any:
        found = await self.own.key(kid)
        if found is None and self.extra is not None:
            found = await self.extra.key(kid)
        return found


def create_app(settings: IdentitySettings | None = None, *, bus: EventBus | None = None, mongo_client: Any = None,
               keys: KeyProvider | None = None) -> FastAPI:
    settings = settings or IdentitySettings()
    ring_box: dict[str, KeyRing] = {}

    def jwks() -> dict[str, Any]:
        # asked lazily, so the all-in-one process can hand this out before identity has started
        ring = ring_box.get("ring")
        return ring.jwks if ring else {"keys": []}

    own_keys = StaticKeyProvider(jwks)
    verifier = TokenVerifier(_OwnKeysFirst(own_keys, keys), issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        infra = Infra(settings, bus=bus, mongo_client=mongo_client, keys=own_keys)
        await infra.open()
        try:
            ring_box["ring"] = await load_keys(infra.db, settings)
            app.state.signer = ring_box["ring"].signer

            async def refresh_keys() -> int:
                # a rotated key (rotate-key, or a replaced secret) is picked up by every replica
                ring_box["ring"] = await load_keys(infra.db, settings)
                app.state.signer = ring_box["ring"].signer
                return 0

            refresher = Sweeper("identity-keys", refresh_keys, interval=settings.key_refresh_seconds)
            refresher.start()
            store = IdentityStore(infra.db, kick=infra.kick, pin_fail_limit=settings.pin_fail_limit,
                                  pin_window=timedelta(seconds=settings.pin_window_seconds),
                                  login_fail_limit=settings.login_fail_limit,
                                  login_window=timedelta(seconds=settings.login_window_seconds))
            await store.ensure_indexes()
            await infra.start_relay(EVENT_COLLECTIONS)
            app.state.infra = infra
            app.state.store = store
            app.state.passwords = Passwords(settings)
            try:
                yield
            finally:
                await refresher.stop()
        finally:
            await infra.close()

    app = service_app(title="Clinishare identity",
                      description="Accounts, offices, Share PINs, connections, patients and care teams.",
                      lifespan=lifespan)
    app.state.settings = settings
    app.state.jwks = jwks
    app.state.verifier = verifier
    for module in (accounts, offices, connections, patients, internal):
        app.include_router(module.router)
    return app
