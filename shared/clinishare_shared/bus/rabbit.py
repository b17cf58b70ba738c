"""RabbitMQ through aio-pika: a robust connection, publisher confirms, mandatory publishes whose returns
raise, one durable quorum queue per consuming service and its dead-letter queue.

Starting never fails for want of a broker: the first connection is retried in the background with
back-off, for ever (``start`` waits ``connect_timeout`` for it, then lets the service serve: writes go to
the outbox, ``ping`` and so ``/readyz`` say the broker is down, subscriptions are made once it answers).
Later outages are absorbed by the robust connection, which restores channels, queues and consumers; every
loss and reconnection is logged.

Queues are declared with their type only. The delivery limit and dead-lettering are RabbitMQ policies
(``clinishare_shared.topology``), so changing them never makes a declaration fail; a queue declared with
other arguments by older code is used as it is (declared passively, logged). The consumer enforces the
limit itself as well and dead-letters what can never succeed at once, with the reason in a header:
- not JSON, an envelope missing required fields, an unknown type, data that does not fit its type;
- a handler that failed ``delivery_limit`` times.
Unknown fields are ignored (forward compatibility), never dead-lettered. A failed handler is nacked
(requeued), never acked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from pydantic import ValidationError

from clinishare_shared.bus.base import EventBus, Handler, PublishFailed
from clinishare_shared.bus.stream import StreamSpec, declare_stream
from clinishare_shared.events import EVENT_TYPES, EXCHANGE, Envelope
from clinishare_shared.locks import KeyedLocks
from clinishare_shared.observability import carrier, consuming, dead_lettered, published, publishing

log = structlog.get_logger("clinishare.bus.rabbit")

REASON_HEADER = "x-clinishare-reason"
QUEUE_HEADER = "x-clinishare-queue"
QUORUM = {"x-queue-type": "quorum"}


def dlx_name(exchange: str) -> str:
    return f"{exchange}.dlx"


def _errors(exc: ValidationError) -> str:
    """Field locations and error kinds only: a validation message could echo a value."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['type']}" for e in exc.errors()[:5])


def read_event(body: bytes) -> tuple[Envelope | None, str | None]:
    """The envelope in ``body`` and None, or None and why it can never be processed. Unknown fields, in the
    envelope or in its data, are ignored."""
    try:
        event = Envelope.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return None, "malformed: not JSON"
        return None, f"malformed envelope: {_errors(exc)}"
    if event.type not in EVENT_TYPES:
        return None, f"unknown type: {event.type[:100]}"
    try:
        event.payload()
    except ValidationError as exc:
        return None, f"malformed data: {_errors(exc)}"
    return event, None


async def declare_queue_tolerant(connection: Any, channel: Any, name: str, arguments: dict[str, Any]) -> tuple[Any, Any]:
    """Declare a durable queue; if it exists with other arguments (older code), use it as it is.
    Returns the channel (a refused declaration closes the one given) and the queue."""
    try:
        return channel, await channel.declare_queue(name, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        log.warning("queue_declared_with_other_arguments_kept", queue=name, reason=str(exc)[:200])
        channel = await connection.channel()
        return channel, await channel.declare_queue(name, passive=True)


# Reading the stream for events whose confirms were lost: start this much before the first was sent (the
# stream's timestamp offset is in whole seconds), stop when nothing new came for DOUBT_IDLE_SECONDS or
# after DOUBT_READ_SECONDS in all.
DOUBT_MARGIN_SECONDS = 2.0
DOUBT_IDLE_SECONDS = 0.5
DOUBT_READ_SECONDS = 10.0


def forced_close(exc: aiormq.exceptions.ConnectionClosed) -> bool:
    """The broker closed the connection itself (CONNECTION_FORCED, e.g. ``rabbitmqctl
    close_connection``) while staying up: what its channel had read was routed to every bound queue or
    to none, and stays so. A broker shutting down or dying (a reset socket) promises nothing of the kind:
    its queues may each keep or lose an unconfirmed message, so such an event is published again."""
    code = exc.args[0] if exc.args else None
    text = str(exc.args[1]) if len(exc.args) > 1 else ""
    return type(exc) is aiormq.exceptions.ConnectionClosed and code == 320 and "shutdown" not in text.lower()


class RabbitBus(EventBus):
    def __init__(
        self,
        url: str,
        *,
        exchange: str = EXCHANGE,
        delivery_limit: int = 5,
        publish_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        prefetch: int = 16,
        stream: StreamSpec | None = None,
        max_retry_seconds: float = 30.0,
    ) -> None:
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        self.url = url
        self.exchange_name = exchange
        self.dlx_name = dlx_name(exchange)
        self.delivery_limit = delivery_limit
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.prefetch = prefetch
        self.stream = stream
        self.max_retry_seconds = max_retry_seconds
        self._conn: AbstractRobustConnection | None = None
        self._pub_channel: AbstractRobustChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._dlx: aio_pika.abc.AbstractExchange | None = None
        self._consumer_channels: list[Any] = []
        self._subscriptions: list[tuple[str, list[str], Handler]] = []
        self._publish_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None
        self.dead_lettered = 0

    async def start(self) -> None:
        """Connect (retrying for ever in the background); wait up to ``connect_timeout`` for it."""
        if self._connector is None:
            self._connected = asyncio.Event()
            self._connector = asyncio.get_running_loop().create_task(self._connect_forever(), name="rabbit-connect")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), self.connect_timeout)
        if not self._connected.is_set():
            log.warning("broker_unreachable_serving_without_it", retrying=True)

    async def wait_connected(self, timeout: float | None = None) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._connected.is_set()

    async def _connect_forever(self) -> None:
        delay, attempt = 0.5, 0
        while True:
            attempt += 1
            conn: AbstractRobustConnection | None = None
            try:
                conn = await aio_pika.connect_robust(self.url, timeout=5)
                await self._setup(conn)
                break
            except asyncio.CancelledError:
                if conn is not None:
                    await conn.close()
                raise
            except Exception as exc:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                self._pub_channel = self._exchange = self._dlx = None
                log.warning("broker_unreachable_retrying", error=type(exc).__name__, attempt=attempt,
                            retry_in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(self.max_retry_seconds, delay * 2)
        if attempt > 1:
            log.info("broker_connected_after_retries", attempts=attempt)
        self._connected.set()

    async def _setup(self, conn: AbstractRobustConnection) -> None:
        conn.close_callbacks.add(lambda *_: log.warning("broker_connection_lost"))
        conn.reconnect_callbacks.add(lambda *_: log.warning("broker_reconnected"))
        self._conn = conn
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        self._dlx = await channel.declare_exchange(self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True)
        if self.stream is not None:
            # bound to "#": with it every event is routable, even one no service consumes yet
            await declare_stream(conn, exchange=self.exchange_name, spec=self.stream)
        self._pub_channel = channel
        for queue, keys, handler in self._subscriptions:
            await self._consume(queue, keys, handler)

    async def close(self) -> None:
        # forget the channels too: a publish after close must fail fast (PublishFailed), not use a dead channel
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connector
            self._connector = None
        self._connected.clear()
        self._exchange = self._dlx = None
        self._pub_channel = None
        self._consumer_channels.clear()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def ping(self) -> bool:
        return self._connected.is_set() and self._conn is not None and not self._conn.is_closed \
            and self._pub_channel is not None \
            and not self._pub_channel.is_closed

    async def _confirmed(self, exchange: Any, message: aio_pika.Message, routing_key: str, what: str) -> None:
        async with self._publish_lock:
            await self._confirm(exchange, message, routing_key, what)

    async def _confirm(self, exchange: Any, message: aio_pika.Message, routing_key: str, what: str) -> None:
        try:
            # wait_for bounds the whole call: during an outage the robust channel would otherwise wait
            # for the reconnection indefinitely.
            await asyncio.wait_for(
                exchange.publish(message, routing_key=routing_key, mandatory=True, timeout=self.publish_timeout),
                self.publish_timeout,
            )
        except aiormq.exceptions.PublishError as exc:
            raise PublishFailed(f"unroutable: {what}", unroutable=True) from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise PublishFailed(f"not confirmed: {exc!r}") from exc
        except aiormq.exceptions.ConnectionClosed as exc:
            raise PublishFailed(f"broker unavailable: {exc!r}", in_doubt=forced_close(exc), sent=True) from exc
        except aio_pika.exceptions.ChannelInvalidStateError as exc:  # the channel was closed: nothing was sent
            raise PublishFailed(f"broker unavailable: {type(exc).__name__}") from exc
        except (asyncio.TimeoutError, OSError, RuntimeError, aiormq.exceptions.AMQPError) as exc:
            # the connection broke or the confirm did not come in time: the event may be there
            raise PublishFailed(f"broker unavailable: {type(exc).__name__}", sent=True) from exc

    async def routed_since(self, event_ids: Collection[str], since: datetime) -> set[str] | None:
        """Read the events stream from ``since`` (less a margin) until every id is found, nothing new
        arrives for ``DOUBT_IDLE_SECONDS`` or ``DOUBT_READ_SECONDS`` have passed. The stream is bound
        to every routing key, and a message the channel routed before the broker closed the connection
        went to every bound queue, the stream included (the broker stayed up: see ``forced_close``).
        None when there is no stream to ask; PublishFailed when it cannot be read now (ask again later,
        do not publish again meanwhile)."""
        wanted = set(event_ids)
        if self.stream is None:
            return None
        if self._conn is None or not self._connected.is_set() or self._conn.is_closed:
            raise PublishFailed("broker not connected: the events stream cannot be read")
        if not wanted:
            return set()
        loop = asyncio.get_running_loop()
        found: set[str] = set()
        heard = loop.time()
        complete = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal heard
            heard = loop.time()
            if message.message_id in wanted:
                found.add(message.message_id)
                if found == wanted:
                    complete.set()
            await message.ack()

        try:
            channel = await asyncio.wait_for(self._conn.channel(), self.publish_timeout)
        except Exception as exc:  # the broker went away again: the caller tries later
            log.warning("outbox_doubt_unresolved", reason=type(exc).__name__, events=len(wanted))
            raise PublishFailed(f"broker unavailable: {type(exc).__name__}") from exc
        try:
            await channel.set_qos(prefetch_count=500)
            queue = await channel.declare_queue(self.stream.name, passive=True)
            start = since - timedelta(seconds=DOUBT_MARGIN_SECONDS)
            tag = await queue.consume(on_message, arguments={"x-stream-offset": start})
            deadline = loop.time() + DOUBT_READ_SECONDS
            while not complete.is_set() and loop.time() < deadline and loop.time() - heard < DOUBT_IDLE_SECONDS:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(complete.wait(), 0.05)
            await queue.cancel(tag)
        except Exception as exc:
            log.warning("outbox_doubt_unresolved", reason=type(exc).__name__, events=len(wanted))
            raise PublishFailed(f"broker unavailable: {type(exc).__name__}") from exc
        finally:
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()
        log.info("outbox_doubt_resolved", events=len(wanted), routed=len(found))
        return found

    def _message(self, event: Envelope) -> aio_pika.Message:
        return aio_pika.Message(
            body=event.model_dump_json().encode(),
            message_id=event.id,
            type=event.type,
            app_id=event.source,
            correlation_id=event.correlation_id,
            timestamp=event.time,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"schema_version": event.schema_version, **carrier()},
        )

    async def publish(self, event: Envelope) -> None:
        if self._exchange is None or not self._connected.is_set():
            raise PublishFailed("broker not connected")
        await self._confirmed(self._exchange, self._message(event), event.type, event.type)
        published(event)

    async def publish_many(self, events: Sequence[Envelope], *, deadline: float | None = None,
                           traces: Sequence[Mapping[str, Any] | None] | None = None) -> list[PublishFailed | None]:
        """Every event in flight at once on the publishing channel (confirms and returns are matched by
        delivery tag and message id), each in its own producer span, then each one's outcome; all start
        at once, within publish_timeout."""
        if self._exchange is None or not self._connected.is_set():
            return [PublishFailed("broker not connected") for _ in events]
        exchange = self._exchange

        async def one(event: Envelope, trace: Mapping[str, Any] | None) -> None:
            with publishing(event, trace):  # a task per event: its span is current for its headers
                await self._confirm(exchange, self._message(event), event.type, event.type)
            published(event)

        async with self._publish_lock:
            results = await asyncio.gather(*(one(e, t) for e, t in zip(events, traces or [None] * len(events))),
                                           return_exceptions=True)
        out: list[PublishFailed | None] = []
        for r in results:
            if isinstance(r, PublishFailed) or r is None:
                out.append(r)
            elif isinstance(r, BaseException):
                raise r
        return out

    async def dead_letter(self, message: AbstractIncomingMessage, queue: str, reason: str) -> None:
        """Put ``message`` (body, id and properties unchanged) in ``queue``'s dead-letter queue with
        ``reason`` in a header, confirmed, then ack it; if that fails it is requeued, never lost."""
        if self._dlx is None:
            raise PublishFailed("broker not connected")
        headers = {k: v for k, v in (message.headers or {}).items() if k != "x-delivery-count"}
        headers.update({REASON_HEADER: reason[:500], QUEUE_HEADER: queue,
                        "x-clinishare-deliveries": _deliveries(message)})
        copy = aio_pika.Message(
            body=message.body, headers=headers, message_id=message.message_id, type=message.type,
            app_id=message.app_id, correlation_id=message.correlation_id, timestamp=message.timestamp,
            content_type=message.content_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._confirmed(self._dlx, copy, queue, f"dead letter of {queue}")
        self.dead_lettered += 1
        dead_lettered(queue, message.type)
        log.error("message_dead_lettered", queue=queue, message_id=message.message_id, reason=reason[:500])

    async def declare_queue(self, queue: str, routing_keys: Sequence[str]) -> None:
        """Declare the queue, its dead-letter queue and its bindings (idempotent)."""
        assert self._conn is not None, "bus not connected"
        channel = await self._conn.channel()
        try:
            channel, _ = await declare_service_queue(self._conn, channel, self.exchange_name, queue, routing_keys)
        finally:
            await channel.close()

    async def subscribe(self, queue: str, routing_keys: Sequence[str], handler: Handler) -> None:
        """Consume ``queue`` now if connected, else as soon as the broker answers (and after every
        reconnection, through the robust connection)."""
        self._subscriptions.append((queue, list(routing_keys), handler))
        if self._connected.is_set() and self._conn is not None:
            await self._consume(queue, list(routing_keys), handler)

    async def _consume(self, queue: str, routing_keys: list[str], handler: Handler) -> None:
        assert self._conn is not None
        channel = await self._conn.channel()
        channel, q = await declare_service_queue(self._conn, channel, self.exchange_name, queue, routing_keys)
        await channel.set_qos(prefetch_count=self.prefetch)
        self._consumer_channels.append(channel)

        in_order = KeyedLocks()

        async def on_message(message: AbstractIncomingMessage) -> None:
            event, reason = read_event(message.body)
            if event is None:
                # can never succeed: to the dead-letter queue at once, so the queue keeps flowing
                await self._dead_letter_or_requeue(message, queue, reason or "malformed")
                return
            # Up to `prefetch` messages are handled at once, but one subject's events one at a time, in the
            # order they arrived (the lock is taken before the first await): per-subject order holds.
            async with in_order.hold(event.subject or event.id):
                await self._handle(message, event, queue, handler)

        await q.consume(on_message)

    async def _handle(self, message: AbstractIncomingMessage, event: Envelope, queue: str, handler: Handler) -> None:
        deliveries = _deliveries(message)
        try:
            with consuming(queue, event, message.headers):
                await handler(event)
        except asyncio.CancelledError:
            await message.nack(requeue=True)
            raise
        except Exception as exc:
            log.warning("handler_failed_nacked", queue=queue, event_id=event.id, event_type=event.type,
                        delivery=deliveries, delivery_limit=self.delivery_limit, exc_info=True)
            if deliveries >= self.delivery_limit:
                await self._dead_letter_or_requeue(
                    message, queue, f"handler failed {deliveries} times: {type(exc).__name__}")
                return
            # A short, growing pause before the requeue so a failing dependency gets time to recover.
            await asyncio.sleep(min(2.0, 0.05 * deliveries))
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _dead_letter_or_requeue(self, message: AbstractIncomingMessage, queue: str, reason: str) -> None:
        try:
            await self.dead_letter(message, queue, reason)
        except PublishFailed as exc:
            log.warning("dead_letter_failed_requeued", queue=queue, message_id=message.message_id, error=str(exc))
            await asyncio.sleep(0.5)
            await message.nack(requeue=True)
            return
        await message.ack()


def _deliveries(message: AbstractIncomingMessage) -> int:
    """This delivery's number (1 for the first): quorum queues count earlier ones in x-delivery-count."""
    return int((message.headers or {}).get("x-delivery-count", 0) or 0) + 1


async def declare_service_queue(connection: Any, channel: Any, exchange: str, queue: str,
                                routing_keys: Sequence[str]) -> tuple[Any, Any]:
    """The exchanges, ``queue`` (quorum), its dead-letter queue bound to the dead-letter exchange under
    the queue's name, and its bindings. Idempotent. Returns the channel still open and the queue."""
    await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(dlx_name(exchange), aio_pika.ExchangeType.DIRECT, durable=True)
    channel, dlq = await declare_queue_tolerant(connection, channel, f"{queue}.dlq", QUORUM)
    await dlq.bind(dlx_name(exchange), routing_key=queue)
    channel, q = await declare_queue_tolerant(connection, channel, queue, QUORUM)
    for key in routing_keys:
        await q.bind(exchange, routing_key=key)
    return channel, q
