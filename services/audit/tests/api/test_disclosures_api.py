"""The accounting of disclosures over HTTP: what is recorded, who may read it, names, filters, paging,
CSV, idempotency, rule ``all``, and the hash chain (verify finds a tampered entry)."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from clinishare_audit.domain.entries import patient_chain
from clinishare_audit.service import append
from clinishare_audit.store import AuditStore
from clinishare_shared.events import (
    ChartAccessed, ChartShareExpired, ChartShareGranted, ChartShareRevoked, DocumentAccessed, DocumentShared,
    OfficeRecipient, SubmissionAccessed,
)

DOC, DR_B, DR_C = "dr-a", "dr-b", "dr-c"
JANE, JOHN = "pat-jane", "pat-john"


def grant(rule: str = "patient", patient: str | None = JANE, **kw: Any) -> dict[str, Any]:
    return {"grant_id": "g1", "owner_id": DOC, "rule": rule, "chart_id": kw.pop("chart_id", None),
            "patient_id": patient, "practitioner_ids": [DR_B], "office_ids": [], **kw}


async def _world(audit: Any) -> None:
    await audit.account(DOC, "Dr Ada")
    await audit.account(DR_B, "Dr Bob")
    await audit.patient(JANE, DOC)
    await audit.patient(JOHN, DR_C)


async def test_shares_and_reads_are_accounted_newest_first_with_names(audit: Any) -> None:
    await _world(audit)
    expires = datetime.now(UTC) + timedelta(days=30)
    await audit.emit(ChartShareGranted(**grant(), expires_at=expires))
    await audit.emit(ChartAccessed(chart_id="c1", patient_id=JANE, owner_id=DOC, accessor_id=DR_B,
                                   accessor_kind="practitioner", grant_ids=["g1"]))
    await audit.emit(DocumentShared(document_id="d1", owner_id=DOC, workspace_patient_id=JANE, patient_ids=[JANE],
                                    offices=[OfficeRecipient(office_id="o1", audience="staff")]))
    await audit.emit(DocumentAccessed(document_id="d1", patient_id=JANE, owner_id=DOC, accessor_id=JANE,
                                      accessor_kind="patient", grant_ids=[f"patient:{JANE}"]))
    await audit.emit(SubmissionAccessed(submission_id="s1", form_id="f1", patient_id=JANE, owner_id=DR_B,
                                        accessor_id=DOC, accessor_kind="practitioner", grant_ids=[]))
    await audit.emit(ChartShareRevoked(**grant()))
    await audit.emit(ChartShareGranted(**grant(patient=JOHN, grant_id="g9")))  # another patient's

    r = await audit.disclosures(JANE, DOC)
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(i["action"], i["item_type"]) for i in items] == [
        ("revoked", "chart"), ("accessed", "form_submission"), ("accessed", "document"), ("shared", "document"),
        ("accessed", "chart"), ("shared", "chart")]
    shared = items[-1]
    assert shared["discloser_name"] == "Dr Ada" and shared["consent_attested_by"] == DOC
    assert shared["recipients"] == [{"kind": "practitioner", "id": DR_B, "name": "Dr Bob", "audience": None,
                                     "expires_at": None}]
    assert shared["expires_at"] is not None and shared["rule"] == "patient"
    read = items[-2]
    assert (read["accessor_id"], read["accessor_name"], read["grant_ids"]) == (DR_B, "Dr Bob", ["g1"])
    assert items[3]["recipients"][0]["audience"] == "staff"
    # the patient sees the same in the portal
    portal = await audit.http.get("/v1/portal/disclosures", headers=audit.auth(JANE, "patient"))
    assert [i["id"] for i in portal.json()["items"]] == [i["id"] for i in items]
    # paging
    first = (await audit.disclosures(JANE, DOC, limit=4)).json()
    rest = (await audit.disclosures(JANE, DOC, limit=4, cursor=first["next_cursor"])).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == [i["id"] for i in items] and not rest["next_cursor"]


async def test_only_the_care_team_and_the_patient_read_a_patients_disclosures(audit: Any) -> None:
    await _world(audit)
    await audit.emit(ChartShareGranted(**grant()))
    assert (await audit.disclosures(JANE, DR_C)).status_code == 404  # not in Jane's care team
    assert (await audit.disclosures(JANE, DR_B)).status_code == 404  # a recipient is not the care team
    assert (await audit.disclosures(JANE, JOHN, "patient")).status_code == 404  # another patient
    assert (await audit.disclosures(JANE, "st-1", "staff")).status_code == 404
    assert (await audit.disclosures(JANE, JANE, "patient")).status_code == 200
    for path in ("disclosures.csv", "disclosures/verify"):
        assert (await audit.http.get(f"/v1/patients/{JANE}/{path}", headers=audit.auth(JOHN, "patient"))).status_code == 404
    assert (await audit.http.get("/v1/portal/disclosures", headers=audit.auth(DOC))).status_code == 403
    john = await audit.http.get("/v1/portal/disclosures", headers=audit.auth(JOHN, "patient"))
    assert john.json()["items"] == []
    await audit.patient(JANE, DR_C, version=2)  # the care team changes: DOC is out, C is in
    assert (await audit.disclosures(JANE, DOC)).status_code == 404
    assert len((await audit.disclosures(JANE, DR_C)).json()["items"]) == 1


async def test_a_redelivered_event_is_recorded_once(audit: Any) -> None:
    await _world(audit)
    event = await audit.emit(ChartShareGranted(**grant()))
    await audit.db["processed_events"].delete_many({})  # as if the consumer crashed before recording the id
    await audit.emit(ChartShareGranted(**grant()), event=event)
    assert len((await audit.disclosures(JANE, DOC)).json()["items"]) == 1


async def test_a_grant_over_all_charts_covers_every_patient_of_its_author_even_later_ones(audit: Any) -> None:
    await _world(audit)
    await audit.emit(ChartShareGranted(**grant(rule="all", patient=None, grant_id="g-all")))
    await audit.emit(ChartShareExpired(**grant(rule="all", patient=None, grant_id="g-all")))
    await audit.patient("pat-later", DOC)  # registered (and charted) after the grant
    for patient in (JANE, "pat-later"):
        items = (await audit.disclosures(patient, DOC)).json()["items"]
        assert [(i["action"], i["rule"], i["grant_id"], i["patient_id"]) for i in items] == [
            ("expired", "all", "g-all", patient), ("shared", "all", "g-all", patient)]
    assert (await audit.disclosures(JOHN, DR_C)).json()["items"] == []  # not a patient of the author


async def test_from_to_and_csv(audit: Any) -> None:
    await _world(audit)
    await audit.emit(ChartShareGranted(**grant()))
    await asyncio.sleep(0.01)
    await audit.emit(ChartAccessed(chart_id="c1", patient_id=JANE, owner_id=DOC, accessor_id=DR_B,
                                   accessor_kind="practitioner", grant_ids=["g1"]))
    accessed, shared = (await audit.disclosures(JANE, DOC)).json()["items"]
    after = (await audit.disclosures(JANE, DOC, **{"from": accessed["at"]})).json()["items"]
    before = (await audit.disclosures(JANE, DOC, to=shared["at"])).json()["items"]
    assert [i["action"] for i in after] == ["accessed"] and [i["action"] for i in before] == ["shared"]
    r = await audit.http.get(f"/v1/patients/{JANE}/disclosures.csv", headers=audit.auth(DOC))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["action"], row["accessor_name"]) for row in rows] == [("accessed", "Dr Bob"), ("shared", "")]
    assert rows[1]["recipients"] == f"practitioner:{DR_B} (Dr Bob)"
    mine = await audit.http.get("/v1/portal/disclosures.csv", headers=audit.auth(JANE, "patient"))
    assert mine.text == r.text


async def test_verify_finds_a_tampered_entry(audit: Any) -> None:
    await _world(audit)
    for n in range(4):
        await audit.emit(ChartAccessed(chart_id=f"c{n}", patient_id=JANE, owner_id=DOC, accessor_id=DR_B,
                                       accessor_kind="practitioner", grant_ids=["g1"]))
    url = f"/v1/patients/{JANE}/disclosures/verify"
    assert (await audit.http.get(url, headers=audit.auth(DOC))).json() == {"ok": True, "entries": 4,
                                                                            "first_bad": None}
    entries = await audit.db["disclosures"].find({"chain": patient_chain(JANE)}).sort("seq", 1).to_list()
    await audit.db["disclosures"].update_one({"_id": entries[2]["_id"]}, {"$set": {"accessor_id": "dr-mallory"}})
    assert (await audit.http.get(url, headers=audit.auth(DOC))).json() == {"ok": False, "entries": 3,
                                                                            "first_bad": entries[2]["_id"]}
    # removing an entry is found too
    await audit.db["disclosures"].update_one({"_id": entries[2]["_id"]}, {"$set": {"accessor_id": DR_B}})
    assert (await audit.http.get(url, headers=audit.auth(DOC))).json()["ok"] is True
    await audit.db["disclosures"].delete_one({"_id": entries[1]["_id"]})
    verdict = (await audit.http.get(url, headers=audit.auth(DOC))).json()
    assert verdict["ok"] is False and verdict["first_bad"] == entries[2]["_id"]


async def test_concurrent_appends_to_one_chain_are_serialized(mongo_client: Any, db_name: str) -> None:
    """Several writers (replicas) appending to one patient's chain at once: every entry gets its own
    position, the chain verifies, and the same event racing with itself is recorded once."""
    from clinishare_audit.domain.chain import verify

    stores = [AuditStore(mongo_client[db_name]) for _ in range(3)]
    await stores[0].ensure_indexes()
    base = {"chain": "patient:p", "at": datetime.now(UTC), "action": "accessed", "item_type": "chart",
            "practitioner_ids": [], "office_ids": [], "patient_ids": [], "grant_ids": []}
    results = await asyncio.gather(*(append(store=stores[i % 3], entry={**base, "event_id": f"e{i // 2}"})
                                     for i in range(20)))
    assert sum(results) == 10
    chain = await stores[0].chain("patient:p")
    assert [e["seq"] for e in chain] == list(range(1, 11)) and verify(chain).ok


async def test_a_stale_chain_head_hint_costs_a_retry_not_a_wrong_chain(mongo_client: Any, db_name: str) -> None:
    """The ``chain_heads`` hint (two reads by ``_id`` per append instead of reading the chain) may lag: a
    crash between an entry's insert and the hint's update, or a slower replica. The append still lands at
    the true end, and the hint is repaired."""
    from clinishare_audit.domain.chain import verify

    a, b = AuditStore(mongo_client[db_name]), AuditStore(mongo_client[db_name])
    await a.ensure_indexes()
    base = {"chain": "patient:q", "at": datetime.now(UTC), "action": "accessed", "item_type": "chart",
            "practitioner_ids": [], "office_ids": [], "patient_ids": [], "grant_ids": []}
    for i in range(3):
        assert await append(store=a, entry={**base, "event_id": f"e{i}"})
    first = (await a.chain("patient:q"))[0]
    await a.heads.update_one({"_id": "patient:q"}, {"$set": {"seq": 1, "entry_id": first["_id"]}})  # stale
    assert await append(store=b, entry={**base, "event_id": "e3"})
    assert not await append(store=b, entry={**base, "event_id": "e1"})  # already there: recorded once
    chain = await a.chain("patient:q")
    assert [e["seq"] for e in chain] == [1, 2, 3, 4] and verify(chain).ok
    assert (await a.heads.find_one({"_id": "patient:q"}))["seq"] == 4


async def test_a_process_appending_to_its_own_chain_reads_nothing_and_a_replica_in_between_costs_a_retry(
        mongo_client: Any, db_name: str) -> None:
    """Appends to a chain this process wrote last take its last entry from memory (no read of the hint,
    no read of the entry); when another replica appended meanwhile, the remembered entry is stale like a
    stale hint: one failed insert, one full look, and the entry lands at the true end."""
    from clinishare_audit.domain.chain import verify

    a, b = AuditStore(mongo_client[db_name]), AuditStore(mongo_client[db_name])
    await a.ensure_indexes()
    reads: list[str] = []
    # each collection object once: the in-process engine hands both stores the same one
    for coll in {id(c): c for store in (a, b) for c in (store.heads, store.entries)}.values():
        real = coll.find_one

        async def counting(*args: Any, _real: Any = real, _name: str = coll.name, **kwargs: Any) -> Any:
            reads.append(_name)
            return await _real(*args, **kwargs)

        coll.find_one = counting  # type: ignore[method-assign]
    base = {"chain": "patient:s", "at": datetime.now(UTC), "action": "accessed", "item_type": "chart",
            "practitioner_ids": [], "office_ids": [], "patient_ids": [], "grant_ids": []}
    for i in range(5):
        assert await append(store=a, entry={**base, "event_id": f"e{i}"})
    assert reads == ["chain_heads"]  # the first append found no hint (a new chain); then nothing
    assert await append(store=b, entry={**base, "event_id": "e5"})  # another replica: seq 6
    assert await append(store=a, entry={**base, "event_id": "e6"})  # a's memory said 5: retried, lands at 7
    assert not await append(store=a, entry={**base, "event_id": "e5"})  # b's event: recorded once
    chain = await a.chain("patient:s")
    assert [e["seq"] for e in chain] == list(range(1, 8)) and verify(chain).ok
    assert [e["event_id"] for e in chain] == [f"e{i}" for i in range(7)]


async def test_the_chain_head_is_advanced_by_id_alone_where_the_engine_indexes_nothing_else(
        mongo_client: Any, db_name: str) -> None:
    """On FerretDB a filter with anything besides ``_id`` reads every document of the collection: the
    head update is one by ``_id`` there (chain_heads holds one document per patient and author), and
    stays conditional (never moving a head back) where the server indexes it."""
    from clinishare_shared.mongo import scans_id_sets

    store = AuditStore(mongo_client[db_name])
    await store.ensure_indexes()
    await store.heads.insert_many([{"_id": f"patient:other{i}", "seq": 1, "entry_id": "x"} for i in range(50)])
    filters: list[Any] = []
    real = store.heads.update_one

    async def recording(filter: Any, *args: Any, **kwargs: Any) -> Any:
        filters.append(filter)
        return await real(filter, *args, **kwargs)

    store.heads.update_one = recording  # type: ignore[method-assign]
    base = {"chain": "patient:t", "at": datetime.now(UTC), "action": "accessed", "item_type": "chart",
            "practitioner_ids": [], "office_ids": [], "patient_ids": [], "grant_ids": []}
    for i in range(4):
        assert await append(store=store, entry={**base, "event_id": f"e{i}"})
    head = await store.heads.find_one({"_id": "patient:t"})
    assert head["seq"] == 4 and head["entry_id"] == (await store.chain("patient:t"))[-1]["_id"]
    if await scans_id_sets(store.heads):
        assert filters and all(f == {"_id": "patient:t"} for f in filters), filters
    else:
        assert filters and all(set(f) == {"_id", "seq"} for f in filters), filters


async def test_appends_to_one_chain_in_one_process_take_turns_and_never_lose_a_race(mongo_client: Any,
                                                                                  db_name: str) -> None:
    """Deliveries handled at once by one process (prefetch) wait for each other per chain: none loses a
    race for a position, so none makes the next append read the whole chain (a scan on FerretDB)."""
    from clinishare_audit.domain.chain import verify

    store = AuditStore(mongo_client[db_name])
    await store.ensure_indexes()
    inserted: list[bool] = []
    insert = store.insert

    async def counting(entry: Any) -> bool:
        inserted.append(await insert(entry))
        return inserted[-1]

    store.insert = counting  # type: ignore[method-assign]
    base = {"chain": "patient:r", "at": datetime.now(UTC), "action": "accessed", "item_type": "chart",
            "practitioner_ids": [], "office_ids": [], "patient_ids": [], "grant_ids": []}
    results = await asyncio.gather(*(append(store=store, entry={**base, "event_id": f"e{i}"}) for i in range(10)))
    assert all(results) and inserted == [True] * 10
    chain = await store.chain("patient:r")
    assert [e["seq"] for e in chain] == list(range(1, 11)) and verify(chain).ok
    assert len(store.appending) == 0  # no lock kept once nobody appends
