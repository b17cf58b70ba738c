"""The replayable event stream (SPEC 10.5): a RabbitMQ stream queue bound to every routing key (``#``) of
the event exchange, so analytics can read from any offset or point in time without disturbing the services'
own queues. Retention comes from settings (``x-max-age``, default 30 days).

Declared idempotently by every service at start (``RabbitBus.start``) and by the topology command before
traffic: ``declare_stream`` is the one place that knows its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
import structlog

log = structlog.get_logger("clinishare.bus.stream")

STREAM_SUFFIX = ".stream"


def stream_name(exchange: str) -> str:
    """``clinishare.events`` -> ``clinishare.events.stream``; a test's unique exchange gets its own stream."""
    return f"{exchange}{STREAM_SUFFIX}"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    max_age_days: int = 30
    max_length_bytes: int | None = None

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-queue-type": "stream", "x-max-age": f"{self.max_age_days}D"}
        if self.max_length_bytes is not None:
            args["x-max-length-bytes"] = self.max_length_bytes
        return args


async def declare_stream(connection: aio_pika.abc.AbstractConnection, *, exchange: str,
                         spec: StreamSpec) -> None:
    """Declare the exchange, the stream and its ``#`` binding; a no-op when they exist.

    RabbitMQ refuses a redeclaration with other arguments (PRECONDITION_FAILED) and closes the channel.
    A retention changed in settings after the stream exists therefore cannot be applied by a declaration:
    we keep the existing stream, bind it, and say how to change it (a policy), instead of refusing to start.
    """
    channel = await connection.channel()
    try:
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        try:
            queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments())
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            log.warning("events_stream_arguments_differ", stream=spec.name, wanted=spec.arguments(),
                        error=str(exc), hint="change retention with a policy (rabbitmqctl set_policy ... "
                        "'{\"max-age\":\"ND\"}' --apply-to queues); the existing stream is kept")
            await channel.close()
            channel = await connection.channel()
            ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
            queue = await channel.declare_queue(spec.name, passive=True)
        await queue.bind(ex, routing_key="#")
    finally:
        if not channel.is_closed:
            await channel.close()
    log.info("events_stream_declared", stream=spec.name, exchange=exchange)
