"""What every service's lifespan opens and closes, the same way everywhere: its database, the bus, the
outbox relay, the idempotent consumer and the token verifier. Nothing connects at import time; a
service's ``create_app`` builds one of these inside its lifespan. The all-in-one process and the tests
hand in a shared bus, Mongo client or key provider instead of letting the service open its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from clinishare_shared.auth import JwksKeyProvider, KeyProvider, TokenVerifier
from clinishare_shared.bus.base import EventBus, Handler
from clinishare_shared.bus.memory import InMemoryBus
from clinishare_shared.consumer import IdempotentConsumer
from clinishare_shared.foreground import Foreground
import asyncio
import contextlib

from clinishare_shared import idempotency
from clinishare_shared.mongo import open_client, purge_expired, server_engine
from clinishare_shared.outbox import FreshClaim, OutboxRelay
from clinishare_shared.projection import IdentityProjection
from clinishare_shared.settings import ServiceSettings
from clinishare_shared.sweeper import Sweeper
from clinishare_shared.lifecycle import cancel_and_wait

log = structlog.get_logger("clinishare.runtime")


def make_bus(settings: ServiceSettings) -> EventBus:
    if settings.amqp_url:
        from clinishare_shared.bus.rabbit import RabbitBus

        return RabbitBus(settings.amqp_url, exchange=settings.event_exchange,
                         delivery_limit=settings.delivery_limit, publish_timeout=settings.publish_timeout,
                         prefetch=settings.consumer_prefetch, stream=settings.stream)
    return InMemoryBus(delivery_limit=settings.delivery_limit, stream=True)


class Infra:
    def __init__(self, settings: ServiceSettings, *, bus: EventBus | None = None, mongo_client: Any = None,
                 keys: KeyProvider | None = None) -> None:
        self.settings = settings
        self._own_bus = bus is None
        self._own_client = mongo_client is None
        self.bus: EventBus = bus or make_bus(settings)
        self.client: Any = mongo_client
        self.db: Any = None
        self.relay: OutboxRelay | None = None
        self._directory: Any = None
        self.consumer: IdempotentConsumer | None = None
        self.foreground = Foreground()  # the events the consumer processes; background work defers to them
        self.projection: IdentityProjection | None = None
        self._catch_up: asyncio.Task[Any] | None = None
        self.engine = ""
        # stands in for MongoDB's TTL monitor where the server refused a TTL index (mongo.ensure_ttl_index);
        # a no-op on MongoDB
        self._ttl_purge: Sweeper | None = None
        self.verifier = TokenVerifier(
            keys or JwksKeyProvider(settings.jwks_url, cache_seconds=settings.jwks_cache_seconds),
            issuer=settings.jwt_issuer, audience=settings.jwt_audience,
        )

    async def open(self) -> None:
        if self.client is None:
            self.client = open_client(self.settings.mongodb_url)
        self.db = self.client[self.settings.database]
        if self._own_bus:
            await self.bus.start()
        self.engine = await server_engine(self.client)
        await idempotency.ensure_indexes(self.db)
        self._ttl_purge = Sweeper("ttl-purge", lambda: purge_expired(self.db), interval=self.settings.ttl_purge_interval)
        self._ttl_purge.start()
        log.info("service_opened", service=self.settings.service_name, mongo=self.engine,
                 database=self.settings.database, bus=type(self.bus).__name__)

    async def open_projection(self) -> IdentityProjection:
        """The identity projection in this service's database, indexed."""
        projection = IdentityProjection(self.db)
        await projection.ensure_indexes()
        self.projection = projection
        return projection

    def expose(self, app: Any, **state: Any) -> None:
        """Put this infra, its token verifier and the service's own objects on ``app.state``."""
        app.state.infra = self
        app.state.verifier = self.verifier
        for name, value in state.items():
            setattr(app.state, name, value)

    def kick(self, collection: str | None = None, doc_id: Any = None) -> None:
        """Wake the outbox relay after a write that staged events (a no-op until the relay runs), so
        events go out now rather than at the next poll. Stores take this as their ``kick``; naming the
        collection and the document lets the relay's next pass read only that document (no scan)."""
        if self.relay is not None:
            self.relay.kick(collection, doc_id)

    # the relay's leases on new documents, for stores that write them with ``outbox.insert_fresh``
    async def claim_fresh(self, collection: str, doc_id: Any) -> FreshClaim | None:
        return None if self.relay is None else await self.relay.claim_fresh(collection, doc_id)

    def kick_claimed(self, claim: FreshClaim, events: list[dict[str, Any]]) -> None:
        if self.relay is not None:
            self.relay.kick_claimed(claim, events)

    async def release_fresh(self, claim: FreshClaim) -> None:
        if self.relay is not None:
            await self.relay.release_fresh(claim)

    async def start_relay(self, collections: Sequence[str]) -> OutboxRelay:
        self.relay = OutboxRelay(self.db, collections, self.bus, poll_interval=self.settings.outbox_poll_interval,
                                 lease_seconds=self.settings.outbox_lease_seconds)
        await self.relay.ensure_indexes()
        if self.settings.outbox_hold:
            log.warning("outbox_relay_held", service=self.settings.service_name)
        else:
            self.relay.start()
        return self.relay

    async def start_consumer(self, handlers: Mapping[str, Handler], *,
                             catch_up: Mapping[str, Handler] | None = None,
                             after_catch_up: Callable[[], Awaitable[Any]] | None = None,
                             snapshot: Any = None) -> IdempotentConsumer:
        """Consume the service's queue. ``catch_up``: the projection handlers through which, in the
        background, an empty or behind projection is rebuilt (``clinishare_shared.catchup``): from
        ``snapshot`` (the service's ``IdentityDirectory``) when it holds the internal key, else from the stream;
        ``after_catch_up`` then re-evaluates what was decided without the facts."""
        self.consumer = IdempotentConsumer(self.db, service=self.settings.service_name, handlers=handlers,
                                           foreground=self.foreground)
        await self.consumer.ensure_indexes()
        await self.bus.subscribe(self.settings.queue, self.consumer.routing_keys, self.consumer)
        if snapshot is not None and not getattr(snapshot, "internal_key", None):
            snapshot = None
        if catch_up and (snapshot is not None or self.settings.amqp_url):
            from clinishare_shared.catchup import catch_up as run_catch_up

            projection = self.projection or await self.open_projection()
            self._catch_up = asyncio.get_running_loop().create_task(run_catch_up(
                projection=projection, handlers=catch_up, snapshot=snapshot, url=self.settings.amqp_url,
                stream=self.settings.stream.name, after=after_catch_up), name="projection-catch-up")
        return self.consumer

    async def ready(self) -> dict[str, bool]:
        try:
            await self.db.command("ping")
            db_ok = True
        except Exception:
            db_ok = False
        return {"database": db_ok, "broker": await self.bus.ping()}

    def directory(self, given: Any, identity_url: str) -> Any:
        """The directory handed in (the all-in-one process shares one), else an identity directory this
        infra owns: one pooled client for the service's life, closed with it."""
        if given is not None:
            return given
        from clinishare_shared.directory import IdentityDirectory

        if self._directory is None:  # one per infra, however often it is asked for
            self._directory = IdentityDirectory(identity_url, internal_key=self.settings.internal_api_key)
        return self._directory

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await cancel_and_wait(self._catch_up)
        if self._ttl_purge is not None:
            await self._ttl_purge.stop()
        if self._directory is not None:
            await self._directory.aclose()
        if self.relay is not None:
            await self.relay.stop()
        if self._own_bus:
            await self.bus.close()
        if self._own_client and self.client is not None:
            await self.client.close()
