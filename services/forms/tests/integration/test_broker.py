"""The forms service on the real RabbitMQ: its events reach a bound queue carrying ids only, and its
identity projection follows identity events published by someone else."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from clinishare_forms.app import create_app
from clinishare_forms.settings import FormsSettings
from clinishare_shared.bus.rabbit import RabbitBus
from clinishare_shared.directory import StaticDirectory
from clinishare_shared.events import Envelope
from clinishare_shared.testing import (
    IdentityFacts, LiveServer, bearer, delete_broker_objects, outbox_emptied, processed_in, wait_for,
)


A, B, D, OFFICE = "prac-a", "prac-b", "prac-d", "office-o"
SECRET_ANSWER = "my private symptoms"


@pytest.fixture
async def broker(amqp_url: str, unique: str) -> AsyncIterator[dict[str, Any]]:
    """A probe bus on a test exchange: it publishes identity events and collects forms.* events."""
    exchange = f"test.{unique}"
    received: list[Envelope] = []

    async def collect(event: Envelope) -> None:
        received.append(event)

    probe = RabbitBus(amqp_url, exchange=exchange)
    await probe.start()
    await probe.subscribe(f"probe.{unique}", ["forms.#"], collect)
    yield {"bus": probe, "received": received, "exchange": exchange}
    await probe.close()
    await delete_broker_objects(amqp_url, queues=[f"probe.{unique}", f"forms.{unique}"], exchanges=[exchange])


@pytest.fixture
async def forms(broker: dict[str, Any], amqp_url: str, unique: str, db_name: str, mongo_client: Any,
                key_provider: Any, signer: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = FormsSettings(amqp_url=amqp_url, event_exchange=broker["exchange"], queue_name=f"forms.{unique}",
                             mongodb_database=db_name, outbox_poll_interval=0.05)
    app = create_app(settings, mongo_client=mongo_client, keys=key_provider, directory=StaticDirectory())
    async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        # identity's facts, published by someone else on the broker; each waits until forms processed it
        facts = IdentityFacts(broker["bus"], settle=processed_in(mongo_client[db_name]))
        await facts.office(A, {D: "practitioner"}, name="O", office_id=OFFICE)
        await facts.connect(A, B)
        await facts.patient(B, patient_id="pat-b")
        await facts.patient(D, patient_id="pat-d")
        client.app = app  # type: ignore[attr-defined]
        client.facts = facts  # type: ignore[attr-defined]
        yield client


def form_body() -> dict[str, Any]:
    return {"title": "Study", "fields": [{"type": "textarea", "key": "symptoms", "label": "Symptoms", "required": True}],
            "sharing": {"allow_others": True, "practitioner_ids": [B], "office_ids": [OFFICE]}}


async def test_forms_events_reach_a_bound_queue_with_ids_only(forms, broker, signer):
    form = (await forms.post("/v1/forms", json=form_body(), headers=bearer(signer, A))).json()
    assignment = await forms.post(f"/v1/forms/{form['id']}/assignments", json={"patient_id": "pat-b"},
                                  headers=bearer(signer, B))
    assert assignment.status_code == 201, assignment.text
    submitted = await forms.post(f"/v1/assignments/{assignment.json()['id']}/submission",
                                 json={"answers": {"symptoms": SECRET_ANSWER}}, headers=bearer(signer, "pat-b", "patient"))
    assert submitted.status_code == 201

    edited = await forms.patch(f"/v1/forms/{form['id']}", json={"title": "Study 2"}, headers=bearer(signer, A))
    assert edited.status_code == 200

    await wait_for(lambda: len(broker["received"]) >= 5, message="five forms events")
    by_type = {e.type: e for e in broker["received"]}
    assert set(by_type) == {"forms.form.created", "forms.shared", "forms.assigned", "forms.submitted",
                            "forms.form.updated"}
    assert by_type["forms.form.created"].data == {"form_id": form["id"], "author_id": A, "version": 1}
    assert by_type["forms.form.updated"].data == {"form_id": form["id"], "author_id": A, "version": 2,
                                                  "changed_fields": ["title"]}
    assert by_type["forms.shared"].data["added_practitioner_ids"] == [B]
    assert by_type["forms.assigned"].data["patient_id"] == "pat-b"
    sub = by_type["forms.submitted"].data
    assert sub["submission_id"] == submitted.json()["id"] and sub["author_may_see"] is False
    for event in broker["received"]:
        raw = json.dumps(event.model_dump(mode="json"))
        assert SECRET_ANSWER not in raw and "Study" not in raw and "Symptoms" not in raw
        assert event.source == "forms" and event.payload()  # a valid catalogue model
    await outbox_emptied(forms.app.state.infra.relay)


async def test_the_projection_follows_identity_events(forms, broker, signer):
    form = (await forms.post("/v1/forms", json=form_body(), headers=bearer(signer, A))).json()
    assign = f"/v1/forms/{form['id']}/assignments"
    assert (await forms.post(assign, json={"patient_id": "pat-d"}, headers=bearer(signer, D))).status_code == 201

    await forms.facts.leave(OFFICE, D)  # handled by forms once this returns
    rosters = await forms.app.state.projection.office_rosters([OFFICE])
    assert D not in rosters[OFFICE]
    resp = await forms.post(assign, json={"patient_id": "pat-d"}, headers=bearer(signer, D))
    assert resp.status_code == 404
    assert (await forms.get(f"/v1/forms/{form['id']}", headers=bearer(signer, D))).status_code == 404
