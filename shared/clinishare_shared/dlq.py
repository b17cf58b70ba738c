"""Dead letters: ``python -m clinishare_shared.dlq list|replay|purge <queue>``.

``<queue>`` is a service's queue (``notify``) or its dead-letter queue (``notify.dlq``).
- ``list``: each dead letter as one JSON line: message id, type, the reason (our header, or RabbitMQ's
  ``x-death`` reason), how many deliveries it had. Nothing is removed (the messages are taken without an
  ack and given back in order when the channel closes).
- ``replay``: publish each dead letter again to the event exchange under its type, with its ORIGINAL
  message id and body (so idempotent consumers still process it once), confirmed, then remove it. A
  message that cannot be routed (malformed: no type) stays in the dead-letter queue and is reported.
- ``purge``: remove them all (prints how many).

Reads ``AMQP_URL`` and ``EVENT_EXCHANGE`` like the services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aio_pika

from clinishare_shared.bus.rabbit import QUEUE_HEADER, REASON_HEADER
from clinishare_shared.settings import ServiceSettings

DEAD_LETTER_HEADERS = {REASON_HEADER, QUEUE_HEADER, "x-clinishare-deliveries", "x-death", "x-first-death-exchange",
                       "x-first-death-queue", "x-first-death-reason", "x-delivery-count"}


def dlq_name(queue: str) -> str:
    return queue if queue.endswith(".dlq") else f"{queue}.dlq"


def describe(message: Any) -> dict[str, Any]:
    headers = message.headers or {}
    death = (headers.get("x-death") or [{}])[0]
    reason = headers.get(REASON_HEADER) or (f"rabbitmq: {death.get('reason')}" if death else None)
    if isinstance(reason, bytes):
        reason = reason.decode()
    return {"message_id": message.message_id, "type": message.type, "reason": reason,
            "queue": headers.get(QUEUE_HEADER) or death.get("queue"),
            "deliveries": headers.get("x-clinishare-deliveries") or death.get("count"),
            "bytes": len(message.body)}


def _routing_key(message: Any) -> str | None:
    if message.type:
        return str(message.type)
    try:
        kind = json.loads(message.body).get("type")
    except (ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


async def list_dead(url: str, queue: str, limit: int = 1000) -> list[dict[str, Any]]:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(dlq_name(queue), passive=True)
        out = []
        while len(out) < limit and (message := await q.get(no_ack=False, fail=False)) is not None:
            out.append(describe(message))
        # closing the channel without acks gives every message back, in order
        return out


async def replay(url: str, exchange: str, queue: str, limit: int = 100000) -> dict[str, Any]:
    connection = await aio_pika.connect(url)
    async with connection:
        get_channel = await connection.channel()
        q = await get_channel.declare_queue(dlq_name(queue), passive=True)
        pub_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        ex = await pub_channel.get_exchange(exchange)
        replayed, kept = [], []
        while len(replayed) + len(kept) < limit and (message := await q.get(no_ack=False, fail=False)) is not None:
            key = _routing_key(message)
            if key is None:
                kept.append(describe(message))
                continue  # unacked: back in the DLQ when the channel closes
            headers = {k: v for k, v in (message.headers or {}).items() if k not in DEAD_LETTER_HEADERS}
            await ex.publish(aio_pika.Message(
                body=message.body, headers=headers, message_id=message.message_id, type=message.type,
                app_id=message.app_id, correlation_id=message.correlation_id, timestamp=message.timestamp,
                content_type=message.content_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ), routing_key=key, mandatory=True)
            await message.ack()
            replayed.append(message.message_id)
        return {"replayed": len(replayed), "message_ids": replayed, "kept": kept}


async def purge(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(dlq_name(queue), passive=True)
        result = await q.purge()
        return int(result.message_count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m clinishare_shared.dlq", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["list", "replay", "purge"])
    parser.add_argument("queue", help="a service queue (its .dlq is used) or a .dlq")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    if not settings.amqp_url:
        raise SystemExit("AMQP_URL is not set")
    if args.command == "list":
        for item in asyncio.run(list_dead(settings.amqp_url, args.queue, args.limit or 1000)):
            print(json.dumps(item, default=str))
    elif args.command == "replay":
        print(json.dumps(asyncio.run(replay(settings.amqp_url, settings.event_exchange, args.queue,
                                            args.limit or 100000)), default=str))
    else:
        print(json.dumps({"purged": asyncio.run(purge(settings.amqp_url, args.queue))}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
