"""Topology before traffic (queues, bindings, DLQs, stream, policies) and the dead-letter tool, on the REAL
broker (policies through rabbitmqctl on this machine)."""

import asyncio
import json
import shutil
import subprocess
from typing import Any

import aio_pika
import pytest

from clinishare_shared import dlq, topology
from clinishare_shared.bus.rabbit import REASON_HEADER, RabbitBus
from clinishare_shared.bus.stream import stream_name
from clinishare_shared.consumer import IdempotentConsumer
from clinishare_shared.events import Envelope, OfficeCreated, OfficeMember, make_event
from clinishare_shared.testing import wait_for

SERVICES = sorted(topology.consumed_types())  # every consuming service (audit included)


def _office(i: int) -> Envelope:
    return make_event(OfficeCreated(office_id=f"o{i}", owner_id="p1", name="North", version=1,
                                    members=[OfficeMember(account_id="p1", role="practitioner")]),
                      source="identity", subject=f"o{i}")


@pytest.fixture
async def isolated(amqp_url: str, unique: str, monkeypatch: pytest.MonkeyPatch, amqp_admin: dict[str, Any]) -> Any:
    exchange = f"test.{unique}"
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("EVENT_EXCHANGE", exchange)
    queues = {}
    for s in SERVICES:
        queues[s] = f"test.{unique}.{s}"
        monkeypatch.setenv(f"{s.upper()}_QUEUE_NAME", queues[s])
        amqp_admin["queues"] += [queues[s], f"{queues[s]}.dlq"]
    amqp_admin["queues"].append(stream_name(exchange))
    amqp_admin["exchanges"] += [exchange, f"{exchange}.dlx"]
    yield exchange, queues
    topology.clear_policies([f"{topology.POLICY_PREFIX}{q}" for q in queues.values()])


async def _count(admin: dict[str, Any], queue: str) -> int:
    ch = await admin["conn"].channel()
    try:
        return int((await ch.declare_queue(queue, passive=True)).declaration_result.message_count)
    finally:
        await ch.close()


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="policies are set with rabbitmqctl on this machine")
async def test_topology_declares_every_queue_before_any_service_runs(isolated, amqp_admin, monkeypatch) -> None:
    exchange, queues = isolated
    summary = await topology.run()
    assert summary["policies"] == "rabbitmqctl" and sorted(summary["queues"]) == sorted(queues.values())
    await topology.run()  # idempotent
    # no service is running, yet an identity fact reaches every consumer's queue and the stream
    ch = await amqp_admin["conn"].channel(publisher_confirms=True, on_return_raises=True)
    ex = await ch.get_exchange(exchange)
    await ex.publish(aio_pika.Message(_office(1).model_dump_json().encode()), routing_key="identity.office.created",
                     mandatory=True)
    for q in queues.values():
        await wait_for(lambda q=q: _count(amqp_admin, q), message=f"{q} holds the event")
    # a share event only reaches notify
    assert "charts.share.granted" in topology.consumed_types()["notify"]
    assert "charts.share.granted" not in topology.consumed_types()["charts"]
    listed = subprocess.run(["rabbitmqctl", "list_policies", "--formatter", "json"], capture_output=True,
                            text=True, check=True).stdout
    mine = {p["name"]: p for p in json.loads(listed) if p["name"].startswith(topology.POLICY_PREFIX + f"test.{exchange[5:]}")}
    assert set(mine) == {f"{topology.POLICY_PREFIX}{q}" for q in queues.values()}
    definition = json.loads(mine[f"{topology.POLICY_PREFIX}{queues['notify']}"]["definition"]) \
        if isinstance(mine[f"{topology.POLICY_PREFIX}{queues['notify']}"]["definition"], str) \
        else mine[f"{topology.POLICY_PREFIX}{queues['notify']}"]["definition"]
    assert definition == {"delivery-limit": 5, "dead-letter-exchange": f"{exchange}.dlx",
                          "dead-letter-routing-key": queues["notify"]}
    # changing the limit is a policy change: the next run (and every service start) still succeeds
    monkeypatch.setenv("NOTIFY_DELIVERY_LIMIT", "2")
    await topology.run()
    bus = RabbitBus(str(topology.ServiceSettings().amqp_url), exchange=exchange, delivery_limit=2)
    await bus.start()
    try:
        await bus.declare_queue(queues["notify"], topology.consumed_types()["notify"])
    finally:
        await bus.close()


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="policies are set with rabbitmqctl on this machine")
async def test_the_delivery_limit_policy_dead_letters_on_the_broker(isolated, amqp_admin, monkeypatch) -> None:
    """RabbitMQ 3.10 applies policy delivery-limit and dead-lettering to quorum queues: a consumer that
    never finishes a message (it nacks, as a killed replica would return it) sees it limit+1 times."""
    exchange, queues = isolated
    monkeypatch.setenv("NOTIFY_DELIVERY_LIMIT", "2")
    await topology.run()
    ch = await amqp_admin["conn"].channel(publisher_confirms=True)
    ex = await ch.get_exchange(exchange)
    await ex.publish(aio_pika.Message(_office(2).model_dump_json().encode(), message_id="m2"),
                     routing_key="identity.office.created")
    q = await ch.declare_queue(queues["notify"], passive=True)
    deliveries = 0
    while deliveries < 10:
        message = await q.get(no_ack=False, fail=False)
        if message is None:
            if await _count(amqp_admin, f"{queues['notify']}.dlq"):
                break
            await asyncio.sleep(0.05)
            continue
        deliveries += 1
        await message.nack(requeue=True)
    dead = await (await ch.declare_queue(f"{queues['notify']}.dlq", passive=True)).get(no_ack=True)
    assert dead.message_id == "m2" and dead.headers["x-death"][0]["reason"] == "delivery_limit"
    assert deliveries == 3


async def test_dlq_list_replay_purge_keep_original_ids(amqp_url, unique, amqp_admin, db) -> None:
    exchange, queue = f"test.{unique}", f"test.{unique}.q"
    amqp_admin["queues"] += [queue, f"{queue}.dlq"]
    amqp_admin["exchanges"] += [exchange, f"{exchange}.dlx"]
    bus = RabbitBus(amqp_url, exchange=exchange, delivery_limit=2)
    await bus.start()
    broken = {"on": True}
    seen: list[str] = []

    async def handler(event: Envelope) -> None:
        if broken["on"]:
            raise RuntimeError("dependency down")
        seen.append(event.id)

    consumer = IdempotentConsumer(db, service="t", handlers={"identity.office.created": handler})
    try:
        await bus.subscribe(queue, consumer.routing_keys, consumer)
        events = [_office(i) for i in range(3)]
        for ev in events:
            await bus.publish(ev)
        ch = await amqp_admin["conn"].channel()
        ex = await ch.get_exchange(exchange)
        await ex.publish(aio_pika.Message(b"{oops", message_id="poison"), routing_key="identity.office.created")
        await wait_for(lambda: _count(amqp_admin, f"{queue}.dlq"), message="dead letters")
        await wait_for(lambda: _is(_count(amqp_admin, f"{queue}.dlq"), 4), message="four dead letters")
        listed = await dlq.list_dead(amqp_url, queue)
        assert sorted(i["message_id"] for i in listed) == sorted([*(e.id for e in events), "poison"])
        reasons = {i["message_id"]: i["reason"] for i in listed}
        assert reasons["poison"] == "malformed: not JSON"
        assert reasons[events[0].id] == "handler failed 2 times: RuntimeError"
        assert await _count(amqp_admin, f"{queue}.dlq") == 4  # listing removes nothing
        broken["on"] = False
        result = await dlq.replay(amqp_url, exchange, queue)
        assert sorted(result["message_ids"]) == sorted(e.id for e in events)
        assert [k["message_id"] for k in result["kept"]] == ["poison"]  # no type: cannot be routed
        await wait_for(lambda: len(seen) == 3, message="replayed events processed")
        assert sorted(seen) == sorted(e.id for e in events)  # the original ids
        await wait_for(lambda: _is(_count(amqp_admin, f"{queue}.dlq"), 1), message="only the poison left")
        left = await (await ch.declare_queue(f"{queue}.dlq", passive=True)).get(no_ack=False)
        assert left.headers[REASON_HEADER] == "malformed: not JSON"
        await left.nack(requeue=True)
        assert await dlq.purge(amqp_url, f"{queue}.dlq") == 1
        assert await _count(amqp_admin, f"{queue}.dlq") == 0
    finally:
        await bus.close()


async def _is(value: Any, expected: int) -> bool:
    return await value == expected


