"""RabbitMQ through aio-pika: a robust connection, publisher confirms, mandatory publishes whose returns
raise, one durable quorum queue per consuming service with an explicit delivery limit and a dead-letter
queue. A failed handler is nacked (requeued), never acked; past the limit RabbitMQ dead-letters it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from pydantic import ValidationError

from clinishare_shared.bus.base import EventBus, Handler, PublishFailed
from clinishare_shared.bus.stream import StreamSpec, declare_stream
from clinishare_shared.events import EXCHANGE, Envelope

log = structlog.get_logger("clinishare.bus.rabbit")


class RabbitBus(EventBus):
    def __init__(
        self,
        url: str,
        *,
        exchange: str = EXCHANGE,
        delivery_limit: int = 5,
        publish_timeout: float = 5.0,
        connect_timeout: float = 30.0,
        prefetch: int = 16,
        stream: StreamSpec | None = None,
    ) -> None:
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        self.url = url
        self.exchange_name = exchange
        self.dlx_name = f"{exchange}.dlx"
        self.delivery_limit = delivery_limit
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.prefetch = prefetch
        self.stream = stream
        self._conn: AbstractRobustConnection | None = None
        self._pub_channel: AbstractRobustChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._consumer_channels: list[AbstractRobustChannel] = []
        self._publish_lock = asyncio.Lock()

    async def start(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.connect_timeout
        while True:
            try:
                self._conn = await aio_pika.connect_robust(self.url, timeout=5)
                break
            except (OSError, aiormq.exceptions.AMQPError, asyncio.TimeoutError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("broker_unreachable_retrying", error=type(exc).__name__)
                await asyncio.sleep(1.0)
        self._pub_channel = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._pub_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await self._pub_channel.declare_exchange(self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True)
        if self.stream is not None:
            # bound to "#": with it every event is routable, even one no service consumes yet
            await declare_stream(self._conn, exchange=self.exchange_name, spec=self.stream)

    async def close(self) -> None:
        # forget the channels too: a publish after close must fail fast (PublishFailed), not use a dead channel
        self._exchange = None
        self._pub_channel = None
        self._consumer_channels.clear()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def ping(self) -> bool:
        return self._conn is not None and not self._conn.is_closed and self._pub_channel is not None \
            and not self._pub_channel.is_closed

    async def publish(self, event: Envelope) -> None:
        if self._exchange is None:
            raise PublishFailed("bus not started")
        message = aio_pika.Message(
            body=event.model_dump_json().encode(),
            message_id=event.id,
            type=event.type,
            app_id=event.source,
            correlation_id=event.correlation_id,
            timestamp=event.time,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"schema_version": event.schema_version},
        )
        try:
            # wait_for bounds the whole call: during an outage the robust channel would otherwise wait
            # for the reconnection indefinitely.
            async with self._publish_lock:
                await asyncio.wait_for(
                    self._exchange.publish(message, routing_key=event.type, mandatory=True,
                                           timeout=self.publish_timeout),
                    self.publish_timeout,
                )
        except aiormq.exceptions.PublishError as exc:
            raise PublishFailed(f"unroutable: {event.type}", unroutable=True) from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise PublishFailed(f"not confirmed: {exc!r}") from exc
        except (asyncio.TimeoutError, OSError, RuntimeError, aiormq.exceptions.AMQPError,
                aio_pika.exceptions.ChannelInvalidStateError) as exc:
            raise PublishFailed(f"broker unavailable: {type(exc).__name__}") from exc

    def queue_arguments(self, queue: str) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            # RabbitMQ 3.10 has no default delivery limit: without one a poison message loops for ever.
            # The broker dead-letters once a message's delivery count EXCEEDS x-delivery-limit, i.e. after
            # x-delivery-limit + 1 deliveries (checked against 3.10.8: limit 2 gave 3 deliveries). Our
            # contract (EventBus, InMemoryBus) is "dead-lettered after delivery_limit deliveries", hence -1.
            "x-delivery-limit": self.delivery_limit - 1,
            "x-dead-letter-exchange": self.dlx_name,
            "x-dead-letter-routing-key": queue,
        }

    async def declare_queue(self, queue: str, routing_keys: Sequence[str]) -> None:
        """Declare the queue, its dead-letter queue and its bindings (idempotent)."""
        assert self._conn is not None, "bus not started"
        channel = await self._conn.channel()
        try:
            await self._declare(channel, queue, routing_keys)
        finally:
            await channel.close()

    async def _declare(self, channel: Any, queue: str, routing_keys: Sequence[str]) -> Any:
        dlx = await channel.declare_exchange(self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True)
        dlq = await channel.declare_queue(f"{queue}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
        await dlq.bind(dlx, routing_key=queue)
        exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        q = await channel.declare_queue(queue, durable=True, arguments=self.queue_arguments(queue))
        for key in routing_keys:
            await q.bind(exchange, routing_key=key)
        return q

    async def subscribe(self, queue: str, routing_keys: Sequence[str], handler: Handler) -> None:
        assert self._conn is not None, "bus not started"
        channel = await self._conn.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        self._consumer_channels.append(channel)
        q = await self._declare(channel, queue, routing_keys)

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                event = Envelope.model_validate_json(message.body)
            except ValidationError:
                # A malformed message can never succeed: straight to the dead-letter queue.
                log.error("malformed_message_dead_lettered", queue=queue, message_id=message.message_id)
                await message.reject(requeue=False)
                return
            try:
                await handler(event)
            except asyncio.CancelledError:
                await message.nack(requeue=True)
                raise
            except Exception:
                deliveries = int((message.headers or {}).get("x-delivery-count", 0) or 0) + 1
                log.warning("handler_failed_nacked", queue=queue, event_id=event.id, event_type=event.type,
                            delivery=deliveries, delivery_limit=self.delivery_limit, exc_info=True)
                # A short, growing pause before the requeue so a failing dependency gets time to recover.
                await asyncio.sleep(min(2.0, 0.05 * deliveries))
                await message.nack(requeue=True)
                return
            await message.ack()

        await q.consume(on_message)
