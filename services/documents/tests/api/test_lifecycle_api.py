"""SPEC 10.1 and 10.2 for documents: shares follow the owner's sharing list, expiring shares and their
sweeper, names, "who can see this" (staff audiences included) and downloads recorded for audit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from clinishare_documents.service import expire_shares
from clinishare_documents.store import DocumentStore
from clinishare_shared.testing import wait_for

ME, DR_B, DR_C, STAFF = "dr-me", "dr-b", "dr-c", "staff-s"


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_deleting_a_connection_ends_access_at_once(api: Any) -> None:
    cid = await api.connect(ME, "practitioner", DR_B)
    doc = await api.upload_ok(ME)
    assert (await api.label(ME, [doc["id"]], add={"practitioner_ids": [DR_B]})).status_code == 200
    assert await api.shared_ids(DR_B) == [doc["id"]]
    await api.disconnect(cid, ME, "practitioner", DR_B)
    assert await api.shared_ids(DR_B) == []
    for path in ("", "/content"):
        assert (await api.client.get(f"/v1/documents/{doc['id']}{path}", headers=api.auth(DR_B))).status_code == 404


async def test_expires_at_is_validated_whole(api: Any) -> None:
    await api.connect(ME, "practitioner", DR_B)
    doc = await api.upload_ok(ME)
    for add in ({"practitioner_ids": [DR_B], "expires_at": _in(-5)},
                {"practitioner_ids": [DR_B], "expires_at": (datetime.now(UTC) + timedelta(days=5 * 366 + 2)).isoformat()},
                {"practitioner_ids": [DR_B], "expires_at": "2030-01-01T00:00:00"}):
        assert (await api.label(ME, [doc["id"]], add=add)).status_code == 422
    bad_remove = await api.label(ME, [doc["id"]], remove={"practitioner_ids": [DR_B], "expires_at": _in(60)})
    assert bad_remove.status_code == 422
    assert await api.shared_ids(DR_B) == []
    ok = await api.label(ME, [doc["id"]], add={"practitioner_ids": [DR_B], "expires_at": _in(3600)})
    assert ok.status_code == 200
    (recipient,) = ok.json()["items"][0]["recipients"]
    assert recipient["id"] == DR_B and recipient["expires_at"] is not None
    # naming the recipient again without an expiry makes the share open-ended
    again = await api.label(ME, [doc["id"]], add={"practitioner_ids": [DR_B]})
    assert again.json()["items"][0]["recipients"][0]["expires_at"] is None


async def test_an_expired_share_gives_nothing_and_is_announced_once(start_documents: Any) -> None:
    api = await start_documents(expiry_sweep_seconds=0.1)
    patient = await api.patient(ME)
    await api.connect(ME, "practitioner", DR_B)
    doc = await api.upload_ok(ME, patient_id=patient)
    await api.label(ME, [doc["id"]], add={"practitioner_ids": [DR_B], "patient_ids": [patient], "expires_at": _in(1)})
    await api.label(ME, [doc["id"]], add={"labels": ["kept"]})  # an ordinary label call keeps the expiry
    assert await api.shared_ids(DR_B) == [doc["id"]]
    expired = await wait_for(lambda: (lambda es: es if len(es) == 2 else None)(
        api.documents_events(("documents.share.expired",))), timeout=10)
    # one event per expired recipient
    assert sorted((e.data["practitioner_ids"], e.data["patient_ids"]) for e in expired) == [
        ([], [patient]), ([DR_B], [])]
    assert await api.shared_ids(DR_B) == []
    portal = await api.client.get("/v1/portal/documents", headers=api.auth(patient, "patient"))
    assert portal.json()["items"] == []
    mine = (await api.client.get(f"/v1/documents/{doc['id']}", headers=api.auth(ME))).json()
    assert mine["shares"]["practitioner_ids"] == [] and mine["labels"] == ["kept"]
    await asyncio.sleep(0.4)
    assert len(api.documents_events(("documents.share.expired",))) == 2


async def test_a_share_past_its_expiry_reads_nothing_before_the_sweep(api: Any) -> None:
    """Read-time enforcement: the sweeper (every 5 s by default) has not run yet."""
    await api.connect(ME, "practitioner", DR_B)
    doc = await api.upload_ok(ME)
    expires = datetime.now(UTC) + timedelta(seconds=2)
    await api.label(ME, [doc["id"]], add={"practitioner_ids": [DR_B], "expires_at": expires.isoformat()})
    before = await api.client.get(f"/v1/documents/{doc['id']}", headers=api.auth(DR_B))
    if datetime.now(UTC) < expires:  # on a loaded machine the label call may outlive the share
        assert before.status_code == 200
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    assert (await api.client.get(f"/v1/documents/{doc['id']}", headers=api.auth(DR_B))).status_code == 404
    assert await api.shared_ids(DR_B) == []


async def test_replicas_sweeping_at_once_announce_each_expiry_once(api: Any) -> None:
    await api.connect(ME, "practitioner", DR_B)
    docs = [await api.upload_ok(ME, bytes([i])) for i in range(3)]
    await api.label(ME, [d["id"] for d in docs], add={"practitioner_ids": [DR_B], "expires_at": _in(0.2)})
    await asyncio.sleep(0.3)
    replicas = [DocumentStore(api.db) for _ in range(3)]
    now = datetime.now(UTC)
    changed = await asyncio.gather(*(expire_shares(store=r, now=now) for r in replicas for _ in range(2)))
    assert sum(changed) == 3
    # these replicas are bare stores with no relay: ask the service's relay for a full sweep (a replica's
    # own relay would publish what it staged), then wait for all three
    api.app.state.infra.relay.kick()
    events = await wait_for(lambda: (lambda es: es if len(es) >= 3 else None)(
        api.documents_events(("documents.share.expired",))), timeout=10)
    await asyncio.sleep(0.3)
    events = api.documents_events(("documents.share.expired",))
    assert sorted(e.data["document_id"] for e in events) == sorted(d["id"] for d in docs)


async def test_names_and_who_can_see_this(api: Any) -> None:
    office = await api.office(ME, **{DR_C: "practitioner", STAFF: "staff"})
    await api.connect(ME, "practitioner", DR_B)
    await api.account(ME, "Dr Me")
    await api.account(DR_B, "Dr Bee")
    patient = await api.patient(ME)
    doc = await api.upload_ok(ME, patient_id=patient)
    labelled = await api.label(ME, [doc["id"]], add={
        "practitioner_ids": [DR_B], "patient_ids": [patient],
        "offices": [{"office_id": office, "audience": "staff"}, {"office_id": office, "audience": "practitioners"}]})
    recipients = labelled.json()["items"][0]["recipients"]
    assert [(r["kind"], r["id"], r["name"], r["audience"]) for r in recipients] == [
        ("patient", patient, None, None), ("practitioner", DR_B, "Dr Bee", None),
        ("office", office, "Office", "practitioners"), ("office", office, "Office", "staff")]
    seen = (await api.client.get(f"/v1/documents/{doc['id']}", headers=api.auth(DR_B))).json()
    assert seen["sharer_name"] == "Dr Me" and seen["recipients"] == []
    url = f"/v1/documents/{doc['id']}/access"
    for who, kind in ((DR_B, "practitioner"), (STAFF, "staff"), (patient, "patient"), ("dr-x", "practitioner")):
        assert (await api.client.get(url, headers=api.auth(who, kind))).status_code == 404
    items = (await api.client.get(url, headers=api.auth(ME))).json()["items"]
    assert sorted((i["kind"], i["id"], tuple(v["through"] for v in i["via"])) for i in items) == sorted([
        ("patient", patient, ("patient",)), ("practitioner", DR_B, ("pin",)),
        ("practitioner", DR_C, ("office_membership",)), ("staff", STAFF, ("office_membership",))])
    await api.remove_member(office, STAFF)
    items = (await api.client.get(url, headers=api.auth(ME))).json()["items"]
    assert STAFF not in {i["id"] for i in items}


async def test_downloads_by_others_are_recorded(api: Any) -> None:
    patient = await api.patient(ME)
    await api.connect(ME, "practitioner", DR_B)
    doc = await api.upload_ok(ME, patient_id=patient)
    await api.label(ME, [doc["id"]], add={"practitioner_ids": [DR_B], "patient_ids": [patient]})
    for who, kind in ((ME, "practitioner"), (DR_B, "practitioner"), (patient, "patient")):
        assert (await api.client.get(f"/v1/documents/{doc['id']}/content", headers=api.auth(who, kind))).status_code == 200
    assert (await api.client.get(f"/v1/documents/{doc['id']}/content", headers=api.auth("dr-x"))).status_code == 404
    events = await api.flush(("documents.document.accessed",))
    assert [(e.data["accessor_id"], e.data["accessor_kind"], e.data["grant_ids"], e.data["patient_id"])
            for e in events] == [(DR_B, "practitioner", [f"practitioner:{DR_B}"], patient),
                                 (patient, "patient", [f"patient:{patient}"], patient)]
