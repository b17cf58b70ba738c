"""Done means (issue 17): after a scripted day of activity through the real services on the real
RabbitMQ, the example consumer replays the stream from the start and its CSV counts match the shares
made; a restart never counts twice; a duplicate delivery is counted once; a run can start at a time."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from clinishare_allinone.system import ServiceOverrides, create_system
from clinishare_analytics.consumer import run
from clinishare_analytics.report import OFFICE_CSV, SHARES_PNG, TYPE_CSV
from clinishare_analytics.settings import AnalyticsSettings
from clinishare_charts.settings import ChartsSettings
from clinishare_documents.settings import DocumentsSettings
from clinishare_forms.settings import FormsSettings
from clinishare_identity.settings import IdentitySettings
from clinishare_notify.settings import NotifySettings
from clinishare_shared.bus.rabbit import RabbitBus
from clinishare_shared.bus.stream import StreamSpec, stream_name
from clinishare_shared.mongo import open_client
from clinishare_shared.routes import SERVICES
from clinishare_shared.testing import LiveServer, wait_for

SHARE_TYPES = ("charts.share.granted", "documents.shared", "forms.shared")


class Person:
    def __init__(self, http: httpx.AsyncClient, token: str, account: dict[str, Any]) -> None:
        self.http, self.id = http, account["id"]
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, status: int, **kw: Any) -> Any:
        r = await self.http.request(method, path, headers=self.headers, **kw)
        assert r.status_code == status, r.text
        return r.json() if r.content else None


@pytest.fixture
async def system(amqp_url: str, unique: str, mongo_client: Any, mongodb_url: Any) -> AsyncIterator[dict[str, Any]]:
    """The all-in-one system on the real broker, on this test's own exchange and stream. It gets a client of
    its own (it closes it when it stops); the fixture's client drops the databases afterwards."""
    exchange = f"test.{unique}"
    common: dict[str, Any] = {"amqp_url": amqp_url, "event_exchange": exchange}
    settings: dict[str, Any] = {}
    for name, cls in (("identity", IdentitySettings), ("charts", ChartsSettings), ("documents", DocumentsSettings),
                      ("forms", FormsSettings), ("notify", NotifySettings)):
        database = f"test_{unique}_{name}"
        mongo_client.test_databases.append(database)
        settings[name] = cls(**common, queue_name=f"{name}.{unique}", mongodb_database=database,
                             outbox_poll_interval=0.05)
    bus = RabbitBus(amqp_url, exchange=exchange, stream=StreamSpec(stream_name(exchange)))
    await bus.start()
    app = create_system(ServiceOverrides(**settings), bus=bus, mongo_client=open_client(mongodb_url))
    try:
        async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            yield {"http": http, "app": app, "bus": bus, "exchange": exchange, "stream": stream_name(exchange)}
    finally:
        await bus.close()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            queues = [q for name in SERVICES for q in (f"{name}.{unique}", f"{name}.{unique}.dlq")]
            for kind, name in [("queue", q) for q in [*queues, stream_name(exchange)]] + \
                    [("exchange", x) for x in (exchange, f"{exchange}.dlx")]:
                channel = await connection.channel()  # a failed delete closes its channel: one each
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await (channel.queue_delete(name) if kind == "queue" else channel.exchange_delete(name))


async def signup(http: httpx.AsyncClient, name: str, unique: str) -> Person:
    email = f"{name}.{unique}@harbour-clinic.org"
    r = await http.post("/v1/accounts", json={"email": email, "password": "correct horse 42", "name": f"Dr {name}",
                                              "kind": "practitioner"})
    assert r.status_code == 201, r.text
    t = await http.post("/v1/auth/token", json={"email": email, "password": "correct horse 42"})
    return Person(http, t.json()["access_token"], r.json())


async def drained(app: Any) -> bool:
    """Every service's outbox is empty: everything written so far is in the stream."""
    for service in app.services.values():
        relay = service.state.infra.relay  # None where a service publishes nothing
        if relay is not None and await relay.pending():
            return False
    return True


async def scripted_day(system: dict[str, Any], unique: str) -> dict[str, Any]:
    """Three practitioners in two offices share charts, documents and forms, and do the rest of a day."""
    http, app = system["http"], system["app"]
    alice, bob, carol = [await signup(http, n, unique) for n in ("alice", "bob", "carol")]
    north = await alice.call("POST", "/v1/offices", 201, json={"name": "North"})
    await alice.call("POST", f"/v1/offices/{north['id']}/members", 201,
                     json={"email": f"bob.{unique}@harbour-clinic.org", "role": "practitioner"})
    south = await carol.call("POST", "/v1/offices", 201, json={"name": "South"})
    # membership is in the stream before anyone shares (analytics attributes shares to offices from it)
    await wait_for(lambda: drained(app), message="identity events in the stream", timeout=20)

    for pin_of, by in ((bob, alice), (alice, carol)):
        pin = (await pin_of.call("GET", "/v1/me/share-pin", 200))["pin"]
        await by.call("POST", "/v1/connections", 201, json={"pin": pin})
    patient = await alice.call("POST", "/v1/patients", 201, json={"name": "Jane Roe", "email": f"jane.{unique}@x.org"})
    theirs = await carol.call("POST", "/v1/patients", 201, json={"name": "John Roe", "email": f"john.{unique}@x.org"})
    chart = await alice.call("POST", "/v1/charts", 201, json={"patient_id": patient["id"], "title": "t", "body": "b"})
    await alice.call("POST", "/v1/charts", 201, json={"patient_id": patient["id"], "title": "t2", "body": "b2"})
    await carol.call("POST", "/v1/charts", 201, json={"patient_id": theirs["id"], "title": "t3", "body": "b3"})

    shares: Counter[tuple[str, str]] = Counter()  # (event type, office) -> shares made
    await wait_for(lambda: _on_list(alice, bob), message="bob on alice's sharing list")
    await wait_for(lambda: _on_list(carol, alice), message="alice on carol's sharing list")
    for body in ({"rule": "chart", "chart_id": chart["id"]}, {"rule": "patient", "patient_id": patient["id"]}):
        await alice.call("POST", "/v1/chart-shares", 201,
                         json={**body, "practitioner_ids": [bob.id], "office_ids": [], "patient_consent": True})
        shares["charts.share.granted", north["id"]] += 1
    await carol.call("POST", "/v1/chart-shares", 201, json={"rule": "all", "practitioner_ids": [alice.id],
                                                            "office_ids": [], "patient_consent": True})
    shares["charts.share.granted", south["id"]] += 1

    doc = await alice.call("POST", "/v1/documents", 201, files={"file": ("labs.txt", b"CBC normal", "text/plain")})
    await alice.call("POST", "/v1/documents/labels", 200,
                     json={"document_ids": [doc["id"]], "add": {"practitioner_ids": [bob.id]}})
    shares["documents.shared", north["id"]] += 1
    await alice.call("POST", "/v1/forms", 201, json={
        "title": "Sleep", "fields": [{"type": "text", "key": "q", "label": "Q", "required": True}],
        "sharing": {"allow_others": True, "practitioner_ids": [bob.id], "office_ids": []}})
    shares["forms.shared", north["id"]] += 1

    # the rest of the day: edits, PIN rotations, a deletion (lifecycle events, not shares)
    await alice.call("PATCH", f"/v1/charts/{chart['id']}", 200, json={"body": "better"})
    await alice.call("POST", "/v1/me/share-pin/rotate", 200)
    await alice.call("POST", f"/v1/offices/{north['id']}/share-pin/rotate", 200)
    await alice.call("DELETE", f"/v1/documents/{doc['id']}", 204)
    await wait_for(lambda: drained(app), message="every outbox drained into the stream", timeout=20)
    return {"shares": shares, "alice": alice, "bob": bob, "north": north, "patient": patient}


async def _on_list(owner: Person, other: Person) -> bool:
    listed = await owner.call("GET", "/v1/sharing-list", 200)
    return any(p["id"] == other.id for p in listed["practitioners"])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def totals(rows: list[dict[str, str]], *keys: str) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for r in rows:
        out[tuple(r[k] for k in keys)] += int(r["count"])
    return out


async def test_replay_after_a_scripted_day_counts_the_shares_made(system, unique, tmp_path, amqp_url) -> None:
    day = await scripted_day(system, unique)
    settings = AnalyticsSettings(amqp_url=amqp_url, stream=system["stream"], out_dir=tmp_path / "a",
                                 save_every=3, idle_seconds=10)

    # a first run stops after a few events (as a crash after a save would), the next one resumes there
    first = await run(settings, start="first", progress=False, limit=7)
    assert first.read == 7 and first.next_offset == 7
    second = await run(settings, start="first", progress=False)  # saved progress wins over --from
    assert second.read > 0 and first.read + second.read == second.next_offset

    by_type = totals(read_csv(tmp_path / "a" / TYPE_CSV), "event_type")
    for share_type in SHARE_TYPES:
        made = sum(n for (t, _), n in day["shares"].items() if t == share_type)
        assert by_type[(share_type,)] == made, share_type
    by_office = totals(read_csv(tmp_path / "a" / OFFICE_CSV), "office_id", "event_type")
    for (share_type, office), made in day["shares"].items():
        assert by_office[(office, share_type)] == made, (office, share_type)
    # the lifecycle of the day is there too, once each
    for event_type, n in {"charts.chart.created": 3, "charts.chart.updated": 1, "documents.document.uploaded": 1,
                          "documents.document.deleted": 1, "forms.form.created": 1, "identity.share_pin.rotated": 2,
                          "identity.office.created": 2}.items():
        assert by_type[(event_type,)] == n, event_type
    assert (tmp_path / "a" / SHARES_PNG).read_bytes()[:4] == b"\x89PNG"

    # every record of the stream was read exactly once over the two runs, in a replay of the whole stream
    again = AnalyticsSettings(amqp_url=amqp_url, stream=system["stream"], out_dir=tmp_path / "b")
    whole = await run(again, start="first", progress=False)
    assert whole.read == first.read + second.read
    assert read_csv(tmp_path / "b" / TYPE_CSV) == read_csv(tmp_path / "a" / TYPE_CSV)

    # a restart with nothing new reads nothing and changes nothing
    before = (tmp_path / "a" / TYPE_CSV).read_text()
    idle = await run(settings, progress=False)
    assert idle.read == 0 and (tmp_path / "a" / TYPE_CSV).read_text() == before

    # at least once: an event delivered twice lands in the stream twice and is counted once; a new share
    # after a point in time is all that a run starting at that time sees
    a_share = await _first_share(amqp_url, system["stream"])
    await asyncio.sleep(1.1)  # a clock boundary for the timestamp start (the broker resolves it by second)
    since = datetime.now(UTC).replace(microsecond=0)
    await system["bus"].publish(a_share)  # the same id again
    await day["alice"].call("POST", "/v1/chart-shares", 201, json={
        "rule": "all", "practitioner_ids": [day["bob"].id], "office_ids": [], "patient_consent": True})
    await wait_for(lambda: drained(system["app"]), message="new share in the stream")
    third = await run(settings, progress=False)
    assert third.read == 2 and third.counted == 1
    by_type = totals(read_csv(tmp_path / "a" / TYPE_CSV), "event_type")
    assert by_type[("charts.share.granted",)] == 4

    # the command line, from a time: only what came after it (the duplicate, counted, and the new share)
    env = {**os.environ, "AMQP_URL": amqp_url}
    out = subprocess.run([sys.executable, "-m", "clinishare_analytics", "--from", since.isoformat(), "--stream",
                          system["stream"], "--out", str(tmp_path / "c"), "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert totals(read_csv(tmp_path / "c" / TYPE_CSV), "event_type") == Counter({("charts.share.granted",): 2})


async def _first_share(amqp_url: str, stream: str) -> Any:
    from clinishare_shared.events import Envelope

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(stream, passive=True)
        found: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            event = Envelope.model_validate_json(message.body)
            if event.type == "charts.share.granted" and not found.done():
                found.set_result(event)

        await queue.consume(on_message, arguments={"x-stream-offset": "first"})
        return await asyncio.wait_for(found, 10)
