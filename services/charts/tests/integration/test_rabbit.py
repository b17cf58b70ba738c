"""Charts on the real RabbitMQ: its identity projection follows identity events (idempotently), and its
own events reach a bound queue carrying ids only."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from clinishare_charts.app import create_app
from clinishare_charts.settings import ChartsSettings
from clinishare_shared.bus.rabbit import RabbitBus
from clinishare_shared.events import Envelope
from clinishare_shared.testing import LiveServer, bearer, delete_broker_objects, wait_for


@dataclass
class RabbitCharts:
    http: httpx.AsyncClient
    identity: Any
    db: Any
    received: list[tuple[Envelope, bytes]]
    signer: Any

    def auth(self, who: str) -> dict[str, str]:
        return bearer(self.signer, who, "practitioner")

    async def handled(self, event: Envelope) -> None:
        await wait_for(lambda: self.db["processed_events"].find_one({"_id": event.id}), message=event.type)

    async def emit(self, coro: Any) -> Any:
        """Publish an identity fact and wait until charts has handled it."""
        result = await coro
        await self.handled(self.identity.sent[-1])
        return result


@pytest.fixture
async def on_rabbit(amqp_url: str, unique: str, mongo_client: Any, db_name: str, signer: Any, key_provider: Any,
                    directory: Any, identity_on: Any) -> AsyncIterator[RabbitCharts]:
    exchange, queue, collector = f"test.{unique}", f"charts.{unique}", f"collector.{unique}"
    publisher = RabbitBus(amqp_url, exchange=exchange)
    await publisher.start()
    received: list[tuple[Envelope, bytes]] = []

    async def collect(event: Envelope) -> None:
        received.append((event, event.model_dump_json().encode()))

    await publisher.subscribe(collector, ["charts.#"], collect)
    settings = ChartsSettings(amqp_url=amqp_url, event_exchange=exchange, queue_name=queue,
                              mongodb_database=db_name, outbox_poll_interval=0.05)
    app = create_app(settings, mongo_client=mongo_client, keys=key_provider, directory=directory)
    try:
        async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            yield RabbitCharts(http=http, identity=identity_on(publisher), db=mongo_client[db_name],
                               received=received, signer=signer)
    finally:
        await publisher.close()
        await delete_broker_objects(amqp_url, queues=[queue, collector], exchanges=[exchange])


async def test_projection_follows_office_membership_and_ignores_redelivery(on_rabbit: RabbitCharts) -> None:
    c, idp = on_rabbit, on_rabbit.identity
    office = await c.emit(idp.office("dr-a"))
    pid = await c.emit(idp.patient("Ada", "dr-a"))
    r = await c.http.post("/v1/charts", json={"patient_id": pid, "title": "t", "body": "b"}, headers=c.auth("dr-a"))
    chart_id = r.json()["id"]
    share = await c.http.post("/v1/chart-shares", headers=c.auth("dr-a"), json={
        "rule": "patient", "patient_id": pid, "office_ids": [office], "patient_consent": True})
    assert share.status_code == 201, share.text
    assert (await c.http.get(f"/v1/charts/{chart_id}", headers=c.auth("dr-b"))).status_code == 404

    joined = await c.emit(idp.join(office, "dr-b"))
    assert (await c.http.get(f"/v1/charts/{chart_id}", headers=c.auth("dr-b"))).status_code == 200

    await c.emit(idp.leave(office, "dr-b"))
    assert (await c.http.get(f"/v1/charts/{chart_id}", headers=c.auth("dr-b"))).status_code == 404

    # the broker redelivers the old "joined" event: it is skipped, and B stays out
    with capture_logs() as logs:
        await idp.publish(joined)
        await wait_for(lambda: any(e["event"] == "event_duplicate_skipped" for e in logs), message="duplicate skip")
    assert (await c.http.get(f"/v1/charts/{chart_id}", headers=c.auth("dr-b"))).status_code == 404
    assert await c.db["processed_events"].count_documents({"_id": joined.id}) == 1


async def test_a_deleted_connection_takes_the_practitioner_off_my_sharing_list(on_rabbit: RabbitCharts) -> None:
    c, idp = on_rabbit, on_rabbit.identity
    body = {"rule": "all", "practitioner_ids": ["dr-b"], "patient_consent": True}
    cid = await c.emit(idp.connect("dr-a", "dr-b"))
    assert (await c.http.post("/v1/chart-shares", json=body, headers=c.auth("dr-a"))).status_code == 201
    await c.emit(idp.disconnect(cid, "dr-a", "dr-b"))
    refused = await c.http.post("/v1/chart-shares", json=body, headers=c.auth("dr-a"))
    assert refused.status_code == 422 and refused.json()["invalid_ids"] == ["dr-b"]


async def test_charts_events_reach_a_bound_queue_with_ids_only(on_rabbit: RabbitCharts) -> None:
    c, idp = on_rabbit, on_rabbit.identity
    await c.emit(idp.connect("dr-a", "dr-b"))
    pid = await c.emit(idp.patient("Ada Lovelace", "dr-a"))
    chart = (await c.http.post("/v1/charts", headers=c.auth("dr-a"),
                               json={"patient_id": pid, "title": "Oncology", "body": "tumour markers"})).json()
    grant = (await c.http.post("/v1/chart-shares", headers=c.auth("dr-a"), json={
        "rule": "chart", "chart_id": chart["id"], "practitioner_ids": ["dr-b"], "patient_consent": True})).json()
    note = await c.http.post(f"/v1/charts/{chart['id']}/notes", json={"text": "second opinion"},
                             headers=c.auth("dr-b"))
    assert note.status_code == 201
    assert (await c.http.delete(f"/v1/chart-shares/{grant['id']}", headers=c.auth("dr-a"))).status_code == 204
    edited = await c.http.patch(f"/v1/charts/{chart['id']}", json={"body": "markers normal"}, headers=c.auth("dr-a"))
    assert edited.status_code == 200

    await wait_for(lambda: len(c.received) >= 5, message="five charts events")
    by_type = {e.type: e for e, _ in c.received}
    assert set(by_type) == {"charts.chart.created", "charts.share.granted", "charts.note.added",
                            "charts.share.revoked", "charts.chart.updated"}
    assert by_type["charts.chart.created"].data == {"chart_id": chart["id"], "author_id": "dr-a", "patient_id": pid}
    assert by_type["charts.chart.updated"].data == {"chart_id": chart["id"], "author_id": "dr-a", "patient_id": pid,
                                                    "changed_fields": ["body"]}
    assert by_type["charts.chart.created"].subject == by_type["charts.chart.updated"].subject == chart["id"]
    assert by_type["charts.share.granted"].data == {
        "grant_id": grant["id"], "owner_id": "dr-a", "rule": "chart", "chart_id": chart["id"], "patient_id": pid,
        "expires_at": None,
        "practitioner_ids": ["dr-b"], "office_ids": []}
    assert by_type["charts.share.revoked"].data["grant_id"] == grant["id"]
    assert by_type["charts.note.added"].data == {"note_id": note.json()["id"], "chart_id": chart["id"],
                                                 "chart_author_id": "dr-a", "author_id": "dr-b"}
    for event, raw in c.received:
        assert event.source == "charts"
        # the words of the text, so that "ada" inside a random hex id ("...2dada14...") is not a leak
        words = " ".join(re.findall(r"[a-z]+", json.dumps(json.loads(raw)).lower()))
        for phi in ("oncology", "tumour", "ada", "lovelace", "second opinion", "markers normal"):
            assert not re.search(rf"\b{phi}\b", words), phi
