"""Identity's snapshot for projection catch-up (``GET /v1/internal/identity-snapshot``): every projected
fact once, as the event that states it now, over several pages; only for a caller with the internal key;
off without one; no PHI beyond what identity's events carry; the high-water mark counts the events."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from clinishare_identity.app import create_app
from clinishare_identity.settings import IdentitySettings
from clinishare_shared.directory import IdentityDirectory
from clinishare_shared.testing import LiveServer

KEY = "internal-test-key-0123456789"
SNAPSHOT = "/v1/internal/identity-snapshot"
PROJECTED = {"identity.account.registered", "identity.office.created", "identity.office.member_added",
             "identity.office.member_removed", "identity.connection.created", "identity.connection.deleted",
             "identity.patient.registered", "identity.patient.care_team_changed"}


@pytest.fixture
def settings(settings: IdentitySettings) -> IdentitySettings:
    return settings.model_copy(update={"internal_api_key": KEY})


async def _world(api: Any) -> dict[str, Any]:
    alice, bob, carol, sam = (await api.register(name="Dr Alice"), await api.register(name="Dr Bob"),
                              await api.register(name="Dr Carol"), await api.register("staff", name="Sam"))
    office = await api.office(alice, (sam, "staff"), (carol, "practitioner"))
    r = await api.client.delete(f"/v1/offices/{office['id']}/members/{carol.id}", headers=alice.auth)
    assert r.status_code == 204, r.text
    kept = await api.connect(alice, await api.pin(bob))
    gone = await api.connect(carol, await api.pin(bob))
    assert (await api.client.delete(f"/v1/connections/{gone['id']}", headers=carol.auth)).status_code == 204
    patient = await api.patient(alice, name="Jane Roe")
    r = await api.client.post(f"/v1/patients/{patient['id']}/care-team", json={"practitioner_id": bob.id},
                              headers=alice.auth)
    assert r.status_code == 200, r.text
    portal = await api.activate(alice, patient)
    return {"alice": alice, "bob": bob, "carol": carol, "sam": sam, "office": office, "kept": kept, "gone": gone,
            "patient": patient, "portal": portal}


async def _all_pages(client: httpx.AsyncClient, limit: int) -> tuple[list[dict[str, Any]], int]:
    facts: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await client.get(SNAPSHOT, params=params, headers={"X-Clinishare-Internal-Key": KEY})
        assert r.status_code == 200, r.text
        pages += 1
        body = r.json()
        assert len(body["items"]) <= limit
        facts += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return facts, pages


async def test_the_snapshot_pages_through_every_projected_fact_once_as_its_event_states_it_now(api, observed) -> None:
    w = await _world(api)
    facts, pages = await _all_pages(api.client, limit=2)
    assert pages > 3
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for f in facts:  # a portal account's id is its patient's: key by kind and id
        key = next(f"{k}:{f['data'][k]}" for k in ("account_id", "office_id", "connection_id", "patient_id")
                   if k in f["data"])
        by_subject.setdefault(key, []).append(f)
    assert all(len(v) == 1 for v in by_subject.values()), "a fact came twice across pages"
    assert set(by_subject) == {*(f"account_id:{w[n].id}" for n in ("alice", "bob", "carol", "sam", "portal")),
                               f"office_id:{w['office']['id']}", f"connection_id:{w['kept']['id']}",
                               f"connection_id:{w['gone']['id']}", f"patient_id:{w['patient']['id']}"}

    office = by_subject[f"office_id:{w['office']['id']}"][0]
    assert office["type"] == "identity.office.created"
    assert office["data"]["version"] == 4 and office["data"]["name"] == "North Clinic"  # created, +2, -1
    assert {m["account_id"]: m["role"] for m in office["data"]["members"]} == {w["alice"].id: "practitioner",
                                                                            w["sam"].id: "staff"}
    assert by_subject[f"connection_id:{w['gone']['id']}"][0]["type"] == "identity.connection.deleted"
    assert by_subject[f"connection_id:{w['kept']['id']}"][0]["type"] == "identity.connection.created"
    patient = by_subject[f"patient_id:{w['patient']['id']}"][0]
    assert patient["type"] == "identity.patient.registered"
    assert patient["data"]["version"] == 2 and set(patient["data"]["care_team"]) == {w["alice"].id, w["bob"].id}
    assert by_subject[f"account_id:{w['bob'].id}"][0]["data"]["email"] == w["bob"].email  # what account.registered carries

    # no PHI beyond the events: the patient's name and e-mail appear nowhere
    text = json.dumps(facts)
    assert "Jane Roe" not in text and w["patient"]["email"] not in text
    assert by_subject[f"account_id:{w['portal'].id}"][0]["data"].get("email") is None

    # one page of everything gives the same facts
    whole, pages = await _all_pages(api.client, limit=1000)
    assert pages == 1 and sorted(map(json.dumps, whole)) == sorted(map(json.dumps, facts))

    # the high-water mark counts the projected events identity published
    directory = IdentityDirectory(str(api.client.base_url), internal_key=KEY)
    try:
        published = len([e for e in observed.events if e.type in PROJECTED])
        assert await directory.high_water() >= published  # events may still be in the outbox
        expected = 5 + 4 + 2 + 1 + 2  # accounts, office version, connections (+1 deleted), patient version
        assert await directory.high_water() == expected
        items, cursor = await directory.snapshot_page(None, 3)
        assert len(items) == 3 and cursor is not None
    finally:
        await directory.aclose()


async def test_the_snapshot_needs_the_internal_key(api, assert_problem) -> None:
    await api.register()
    assert_problem(await api.client.get(SNAPSHOT), 401)
    assert_problem(await api.client.get(SNAPSHOT, headers={"X-Clinishare-Internal-Key": "wrong"}), 401)
    assert_problem(await api.client.get(f"{SNAPSHOT}/high-water"), 401)
    # a user's token is no key
    user = await api.register()
    assert_problem(await api.client.get(SNAPSHOT, headers=user.auth), 401)
    assert_problem(await api.client.get(SNAPSHOT, params={"cursor": "nowhere:1"},
                                        headers={"X-Clinishare-Internal-Key": KEY}), 422)
    assert_problem(await api.client.get(SNAPSHOT, params={"limit": 0},
                                        headers={"X-Clinishare-Internal-Key": KEY}), 422)


async def test_without_an_internal_key_the_snapshot_is_off(settings, bus, mongo_client, assert_problem) -> None:
    app = create_app(settings.model_copy(update={"internal_api_key": None}), bus=bus, mongo_client=mongo_client)
    async with LiveServer(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        assert_problem(await client.get(SNAPSHOT, headers={"X-Clinishare-Internal-Key": ""}), 404)
        assert_problem(await client.get(SNAPSHOT, headers={"X-Clinishare-Internal-Key": KEY}), 404)


def test_the_snapshot_is_not_in_the_public_api_nor_routed_by_the_gateway() -> None:
    from clinishare_shared.routes import owner_of

    assert owner_of(SNAPSHOT) is None and owner_of(f"{SNAPSHOT}/high-water") is None
    paths = create_app(IdentitySettings(internal_api_key=KEY)).openapi()["paths"]
    assert not [p for p in paths if p.startswith("/v1/internal")]
