"""Scale-out under faults: two replicas of every service, a private broker that is killed, consumers and
relays that crash, an SMTP outage, poison messages. Each scenario fires a bounded stream of chart shares
(Alice shares her chart with Bob, one grant per share: one notification and one e-mail each) and then
checks exact counts, printed as one line per scenario. Figures come from FerretDB (SQLite) and the
private RabbitMQ 3.10 node."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx
import pytest
from pymongo import AsyncMongoClient

from clinishare_shared import dlq
from clinishare_shared.events import ChartShareGranted, make_event
from clinishare_shared.outbox import CLAIMS
from clinishare_shared.processes import settle
from clinishare_shared.routes import SERVICES
from clinishare_shared.testing import wait_for

pytestmark = [pytest.mark.e2e]
# per scenario ("a few hundred"); FAULT_SHARES overrides it. Each scenario's line says where its time went.
SHARES = int(os.environ.get("FAULT_SHARES", "300"))
CONCURRENCY = 16
Fault = Callable[[], Awaitable[None] | None]
TIMES: dict[str, float] = {}  # where a scenario's time went, printed with its line


async def _people(stack: Any, http: httpx.AsyncClient) -> dict[str, Any]:
    """Alice (the sharer, with a patient and a chart) and Bob, connected by Bob's Share PIN. Later
    scenarios log Alice in again (an access token lives 15 minutes)."""
    if stack.people:
        t = await http.post("/v1/auth/token", json={"email": stack.people["alice_email"], "password": "correct horse 42"})
        assert t.status_code == 200, t.text
        stack.people["alice"] = {"Authorization": f"Bearer {t.json()['access_token']}"}
        return stack.people
    tokens, ids, emails = {}, {}, {}
    suffix = str(time.time_ns())
    for who in ("alice", "bob"):
        email = emails[who] = f"{who}.{suffix}@harbour-clinic.org"
        r = await http.post("/v1/accounts", json={"email": email, "password": "correct horse 42",
                                                   "name": f"Dr {who.title()}", "kind": "practitioner"})
        assert r.status_code == 201, r.text
        ids[who] = r.json()["id"]
        t = await http.post("/v1/auth/token", json={"email": email, "password": "correct horse 42"})
        tokens[who] = {"Authorization": f"Bearer {t.json()['access_token']}"}
    pin = (await http.get("/v1/me/share-pin", headers=tokens["bob"])).json()["pin"]
    assert (await http.post("/v1/connections", json={"pin": pin}, headers=tokens["alice"])).status_code == 201
    patient = await http.post("/v1/patients", json={"name": "Jane Roe", "email": f"jane.{suffix}@patient-mail.org"},
                              headers=tokens["alice"])
    chart = await http.post("/v1/charts", json={"patient_id": patient.json()["id"], "title": "Rash", "body": "x"},
                            headers=tokens["alice"])
    assert chart.status_code == 201, chart.text
    stack.people = {"alice": tokens["alice"], "alice_email": emails["alice"], "bob_id": ids["bob"],
                    "bob_email": emails["bob"],
                    "alice_id": ids["alice"], "chart_id": chart.json()["id"]}

    # charts learns the connection from identity's events: wait until a share is accepted
    async def can_share() -> bool:
        r = await http.post("/v1/chart-shares", json=_share_body(stack), headers=tokens["alice"])
        if r.status_code == 201:
            stack.people["warmup"] = r.json()["id"]
        return r.status_code == 201

    await wait_for(can_share, timeout=60, interval=0.2, message="the connection reached charts")
    return stack.people


def _share_body(stack: Any) -> dict[str, Any]:
    p = stack.people
    return {"rule": "chart", "chart_id": p["chart_id"], "practitioner_ids": [p["bob_id"]], "office_ids": [],
            "patient_consent": True}


async def _stream(stack: Any, http: httpx.AsyncClient, n: int = SHARES, *, fault: Fault | None = None,
                  at: float = 0.3, base_url: str | None = None) -> list[str]:
    """Fire ``n`` shares (CONCURRENCY in flight); run ``fault`` once ``at`` of them were answered. Every
    share must be answered 201 (writes go to the outbox whatever the broker does)."""
    grants: list[str] = []
    stack.mail_seen |= set(stack.smtp.mailbox.message_ids())  # what came before is no scenario's but earlier ones
    fired = asyncio.Event()
    lock = asyncio.Semaphore(CONCURRENCY)
    target = base_url or stack.gateway

    async def one() -> None:
        async with lock:
            r = await http.post(f"{target}/v1/chart-shares", json=_share_body(stack), headers=stack.people["alice"])
        assert r.status_code == 201, r.text
        grants.append(r.json()["id"])
        if fault is not None and len(grants) >= n * at and not fired.is_set():
            fired.set()
            result = fault()
            if asyncio.iscoroutine(result):
                await result

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(n)))
    TIMES["fired"] = time.monotonic() - started
    return grants


async def _check(stack: Any, name: str, grants: list[str], *, extra_events: int = 0,
                 analytics_dups_allowed: int = 0, repeats_possible: Callable[[], Awaitable[int]] | None = None,
                 before: int = 0) -> dict[str, int]:
    """Wait until every share is notified and e-mailed and every outbox is empty, let things settle,
    then count exactly and print the scenario's line."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
    try:
        notify = stack.db(client, "notify")
        bob = stack.people["bob_id"]
        query = {"ref.grant_id": {"$in": grants}, "recipient_id": bob}
        expected = len(grants)

        # wait on the SMTP server (in this process: free) rather than polling counts on FerretDB, whose
        # SQLite handler scans the whole collection for them; the exact counts are taken once, below
        started = time.monotonic()
        # generous: a loaded machine runs a scenario slower, and how long is printed either way
        await wait_for(lambda: len(_new_mail_ids(stack)) >= expected, timeout=480, interval=1.0,
                       message=f"{name}: e-mailed")
        TIMES["e-mailed"] = time.monotonic() - started
        await wait_for(lambda: _outboxes_empty(stack, client), timeout=120, interval=2.0,
                       message=f"{name}: outboxes empty")
        TIMES["drained"] = time.monotonic() - started
        await settle(2.0)  # a quiet period: nothing more may arrive
        docs = await notify.notifications.find(query, {"event_id": 1}).to_list()
        event_ids = {d["event_id"] for d in docs}
        by_grant = {g: 0 for g in grants}
        for d in await notify.notifications.find(query, {"ref.grant_id": 1}).to_list():
            by_grant[d["ref"]["grant_id"]] += 1
        wanted = {f"<{e}.{bob}@notify.clinishare>" for e in event_ids}
        received = [m for m in stack.smtp.mailbox.message_ids() if m in wanted]
        await stack.drain_analytics()
        if repeats_possible is not None:
            analytics_dups_allowed += await repeats_possible() - before
        seen = {e: stack.analytics[e] for e in event_ids}
        counts = {
            "shares": expected,
            "notified": sum(1 for c in by_grant.values() if c >= 1),
            "e-mailed": len(set(received)),
            "lost": sum(1 for c in by_grant.values() if c == 0) + len(wanted - set(received)),
            "duplicated": sum(c - 1 for c in by_grant.values() if c > 1),
            "smtp repeats (same Message-ID)": len(received) - len(set(received)),
            "analytics missing": sum(1 for c in seen.values() if c == 0),
            "analytics dups": sum(c - 1 for c in seen.values() if c > 1),
        }
        print(f"fault {name}: shares {counts['shares']}, notified {counts['notified']}, e-mailed {counts['e-mailed']}, "
              f"lost {counts['lost']}, duplicated {counts['duplicated']}, analytics dups {counts['analytics dups']}"
              f" (allowed {analytics_dups_allowed}; analytics missing {counts['analytics missing']}, smtp repeats with the same Message-ID "
              f"{counts['smtp repeats (same Message-ID)']}; fired in {TIMES.pop('fired', 0):.0f} s, then e-mailed "
              f"in {TIMES.pop('e-mailed'):.0f} s, outboxes empty in {TIMES.pop('drained'):.0f} s)", flush=True)
        stack.mail_seen |= set(stack.smtp.mailbox.message_ids())
        assert counts["notified"] == counts["e-mailed"] == expected
        assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["analytics missing"] == 0
        assert counts["analytics dups"] <= analytics_dups_allowed
        return counts
    finally:
        await client.close()


def _new_mail_ids(stack: Any) -> set[str]:
    """Message-IDs of e-mails to Bob the SMTP server received since the previous scenario was checked."""
    bob = stack.people["bob_email"]
    return {str(message_from_bytes(m.content if isinstance(m.content, bytes) else str(m.content).encode())
                .get("Message-ID", "")).strip()
            for m in stack.smtp.mailbox.messages if bob in m.rcpt_tos} - stack.mail_seen


async def _outboxes_empty(stack: Any, client: AsyncMongoClient[Any]) -> bool:
    """No staged event left in any service's outbox collections (those the relays index as
    ``outbox_pending``; FerretDB scans a collection for this count, so only those are counted)."""
    for service in SERVICES:
        db = stack.db(client, service)
        for name in await db.list_collection_names():
            if name.startswith("_outbox") or name == CLAIMS:
                continue
            if "outbox_pending" not in [i["name"] async for i in await db[name].list_indexes()]:
                continue
            if await db[name].count_documents({"_outbox.id": {"$exists": True}}):
                return False
    return True


@pytest.fixture
async def http(fault_stack: Any) -> Any:
    async with httpx.AsyncClient(base_url=fault_stack.gateway, timeout=60) as client:
        yield client


# ---- the scenarios, in this order ----------------------------------------------------------------


async def test_5_poison_and_newer_event_and_notify_started_after_everyone_published(fault_stack, http) -> None:
    stack = fault_stack
    assert not stack.notify_started, "this scenario must run first: notify starts late on purpose"
    await _people(stack, http)  # identity published Bob's address before notify ever ran
    poison_id = f"poison-{time.time_ns()}"
    extra = make_event(ChartShareGranted(grant_id=f"g-newer-{time.time_ns()}", owner_id=stack.people["alice_id"],
                                         rule="chart", chart_id=stack.people["chart_id"],
                                         practitioner_ids=[stack.people["bob_id"]], office_ids=[]),
                       source="charts", subject="newer")
    newer = json.loads(extra.model_dump_json())
    newer["trace_state"] = "added by a newer publisher"
    newer["data"]["share_note_kind"] = "added later"

    async def inject() -> None:
        connection = await aio_pika.connect(stack.rabbit.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            ex = await channel.get_exchange("clinishare.events")
            await ex.publish(aio_pika.Message(b"not json {", message_id=poison_id), routing_key="charts.share.granted")
            await ex.publish(aio_pika.Message(json.dumps(newer).encode(), message_id=extra.id, type=extra.type),
                             routing_key=extra.type)

    grants = await _stream(stack, http, fault=inject, at=0.5)
    await stack.start_notify()  # first start, after everything above was published
    grants.append(extra.data["grant_id"])
    if "warmup" in stack.people:
        grants.append(stack.people.pop("warmup"))
    await _check(stack, "late-notify-poison-newer", grants)
    dead = await dlq.list_dead(stack.rabbit.url, "notify")
    poison = [d for d in dead if d["message_id"] == poison_id]
    assert poison and poison[0]["reason"] == "malformed: not JSON" and poison[0]["deliveries"] == 1
    assert not [d for d in dead if d["message_id"] == extra.id]  # the newer event was processed, not dead-lettered


async def _unconfirmed(stack: Any, http: httpx.AsyncClient, resolution: str = "unverifiable") -> int:
    """Charts events whose confirm never came, by what became of them (``unverifiable``: published again
    after a broker died before confirming them, which it may have routed; ``routed``: the events stream
    had them, not published again), from the replicas' /metrics."""
    total = 0
    for name in stack.replicas("charts"):
        body = (await http.get(f"{stack.procs.procs[name].url}/metrics")).text
        for line in body.splitlines():
            if line.startswith("clinishare_outbox_events_unconfirmed_total{") and f'resolution="{resolution}"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def test_1_broker_killed_mid_stream(fault_stack, http) -> None:
    stack = fault_stack
    await stack.start_notify()
    await _people(stack, http)
    before = await _unconfirmed(stack, http)

    async def kill_and_restart() -> None:
        stack.rabbit.kill9()
        await asyncio.sleep(3)  # writes keep answering 201 meanwhile
        await asyncio.to_thread(stack.rabbit.start)

    grants = await _stream(stack, http, fault=kill_and_restart)
    # A broker killed before confirming what it had routed cannot be asked what it kept (each queue may
    # have kept or lost it): those events go out again and may repeat. Their number is the bound.
    await _check(stack, "broker-kill", grants, repeats_possible=lambda: _unconfirmed(stack, http), before=before)


async def test_2_a_notify_replica_killed_mid_stream(fault_stack, http) -> None:
    stack = fault_stack
    await stack.start_notify()
    await _people(stack, http)

    def kill() -> None:
        stack.procs.kill9("notify-1")

    grants = await _stream(stack, http, fault=kill)
    stack.procs.start("notify-1")
    await stack.procs.ready("notify-1")
    await _check(stack, "notify-kill", grants)


async def test_3_connections_closed_mid_stream(fault_stack, http) -> None:
    stack = fault_stack
    await stack.start_notify()
    await _people(stack, http)

    async def close_all() -> None:
        await asyncio.to_thread(stack.rabbit.ctl, "close_all_connections", "fault test")

    routed_before = await _unconfirmed(stack, http, "routed")
    grants = await _stream(stack, http, fault=close_all)
    await _check(stack, "connections-closed", grants)  # no duplicate allowed: lost confirms are asked about
    print(f"fault connections-closed: {await _unconfirmed(stack, http, 'routed') - routed_before} events whose "
          "confirm was lost were found routed in the events stream and not published again", flush=True)


async def test_4_smtp_outage(fault_stack, http) -> None:
    stack = fault_stack
    await stack.start_notify()
    await _people(stack, http)
    stack.smtp.stop()
    try:
        grants = await _stream(stack, http)
        client: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
        try:
            notify = stack.db(client, "notify")

            async def inbox_written() -> bool:  # the inbox is written at once, SMTP or not
                return await notify.notifications.count_documents({"ref.grant_id": {"$in": grants}}) == len(grants)

            async def failing() -> bool:  # and e-mails fail and wait for their back-off
                return await notify.notifications.count_documents(
                    {"ref.grant_id": {"$in": grants}, "email.last_error": {"$exists": True}}) > 0

            await wait_for(inbox_written, timeout=120, interval=0.5, message="inbox entries during the outage")
            await wait_for(failing, timeout=60, interval=0.5, message="e-mails failing during the outage")
            sent_meanwhile = await notify.notifications.count_documents(
                {"ref.grant_id": {"$in": grants}, "email.status": "sent"})
            assert sent_meanwhile == 0
        finally:
            await client.close()
    finally:
        stack.smtp.start()
    await _check(stack, "smtp-outage", grants)


async def test_6_a_relay_killed_while_holding_claims(fault_stack, http) -> None:
    stack = fault_stack
    await stack.start_notify()
    await _people(stack, http)
    # The stream's events wait in the outbox: charts-1 answers the shares but holds its relay, charts-2
    # is down. Then charts-2 starts, its start-up sweep claims the staged documents, and it is killed as
    # soon as it holds claims; its leases must run out and another relay publish what they held.
    stack.procs.stop("charts-2")
    stack.procs.stop("charts-1")
    stack.procs.start("charts-1", CHARTS_OUTBOX_HOLD="true")
    await stack.procs.ready("charts-1")
    grants = await _stream(stack, http, base_url=stack.procs.procs["charts-1"].url)
    client: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
    held: dict[str, int] = {"claims": 0}
    try:
        claims = stack.db(client, "charts")[CLAIMS]
        victim = stack.procs.start("charts-2")
        prefix = f"{socket.gethostname()}:{victim.popen.pid}:"

        async def holds_claims() -> bool:
            held["claims"] = await claims.count_documents({"by": {"$regex": f"^{prefix}"}})
            return held["claims"] > 0

        await wait_for(holds_claims, timeout=90, interval=0.01, message="charts-2's relay claimed staged documents")
        stack.procs.kill9("charts-2")
    finally:
        await client.close()
    print(f"fault relay-kill: charts-2's relay held {held['claims']} claims when killed", flush=True)
    assert held["claims"] > 0  # the fault really happened: a relay died holding claims
    stack.procs.stop("charts-1")
    stack.procs.start("charts-1", CHARTS_OUTBOX_HOLD="false")
    stack.procs.start("charts-2")
    await stack.procs.ready("charts-1", "charts-2")
    # a crash after the broker's confirm and before the removal may repeat the events it held
    await _check(stack, "relay-kill", grants, analytics_dups_allowed=held["claims"] * 2)


async def test_7_a_charts_replica_killed_before_its_relay_published(fault_stack, http) -> None:
    stack = fault_stack
    await stack.start_notify()
    await _people(stack, http)
    for name in stack.replicas("charts"):  # both replicas stage but do not publish
        stack.procs.stop(name)
        stack.procs.start(name, CHARTS_OUTBOX_HOLD="true")
    await stack.procs.ready(*stack.replicas("charts"))
    grants = await _stream(stack, http)
    client: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
    try:
        staged = sum([await stack.db(client, "charts")[c].count_documents({"_outbox.id": {"$exists": True}})
                      for c in ("chart_grants",)])
    finally:
        await client.close()
    stack.procs.kill9("charts-1")
    stack.procs.start("charts-1", CHARTS_OUTBOX_HOLD="false")  # same database: FerretDB kept what it answered
    await stack.procs.ready("charts-1")
    await _check(stack, "charts-kill-before-relay", grants)
    print(f"fault charts-kill-before-relay: {staged} documents held staged events at the kill "
          f"({datetime.now(UTC):%H:%M:%S})", flush=True)
    stack.procs.stop("charts-2")
    stack.procs.start("charts-2", CHARTS_OUTBOX_HOLD="false")
    await stack.procs.ready("charts-2")
