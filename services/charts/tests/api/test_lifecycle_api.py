"""SPEC 10.1 and 10.2 for charts: grants follow the sharer's sharing list, expiring grants and their
sweeper, names in responses, "who can see this" and the access log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from clinishare_charts import service
from clinishare_charts.store import ChartStore, reach_key
from clinishare_shared.testing import wait_for


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_deleting_a_connection_ends_access_at_once(charts: Any) -> None:
    idp = charts.identity
    cid = await idp.connect("dr-a", "dr-b")
    pid = await idp.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-b"])
    assert await charts.status("dr-b", chart["id"]) == 200
    await idp.disconnect(cid, "dr-a", "dr-b")
    assert await charts.status("dr-b", chart["id"]) == 404
    assert await charts.shared_ids("dr-b") == []
    access = (await charts.http.get(f"/v1/charts/{chart['id']}/access", headers=charts.auth("dr-a"))).json()
    assert access["items"] == []


async def test_an_office_grant_ends_when_the_sharer_leaves_the_office(charts: Any) -> None:
    idp = charts.identity
    office = await idp.office("dr-owner", {"dr-a": "practitioner", "dr-b": "practitioner"})
    pid = await idp.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    await charts.share("dr-a", "patient", patient_id=pid, office_ids=[office])
    assert await charts.shared_ids("dr-b") == [chart["id"]]
    await idp.leave(office, "dr-a")  # the office is no longer on A's sharing list
    assert await charts.status("dr-b", chart["id"]) == 404
    assert await charts.shared_ids("dr-b") == []


async def test_expires_at_is_validated(charts: Any) -> None:
    idp = charts.identity
    await idp.connect("dr-a", "dr-b")
    pid = await idp.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    body = {"chart_id": chart["id"], "practitioner_ids": ["dr-b"]}
    for bad in (_in(-60), (datetime.now(UTC) + timedelta(days=5 * 366 + 2)).isoformat(),
                datetime.now().replace(microsecond=0).isoformat(), "tomorrow"):
        await charts.share("dr-a", "chart", expect=422, expires_at=bad, **body)
    assert (await charts.http.get("/v1/chart-shares", headers=charts.auth("dr-a"))).json()["items"] == []
    ok = await charts.share("dr-a", "chart", expires_at=(datetime.now(UTC) + timedelta(days=4 * 365)).isoformat(),
                            **body)
    assert ok["expires_at"] is not None and ok["expired_at"] is None


async def test_an_expired_grant_gives_nothing_and_is_announced_once(charts: Any) -> None:
    idp = charts.identity
    await idp.connect("dr-a", "dr-b")
    pid = await idp.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    expires = datetime.now(UTC) + timedelta(seconds=2)
    grant = await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-b"],
                               expires_at=expires.isoformat())
    before = await charts.status("dr-b", chart["id"])
    if datetime.now(UTC) < expires:  # on a loaded machine the share call may outlive the grant
        assert before == 200
    expired = await wait_for(lambda: [e for e in charts.published if e.type == "charts.share.expired"], timeout=10)
    assert await charts.status("dr-b", chart["id"]) == 404
    assert await charts.shared_ids("dr-b") == []
    assert expired[0].data["grant_id"] == grant["id"] and expired[0].data["practitioner_ids"] == ["dr-b"]
    await asyncio.sleep(0.5)  # several more sweeps: still one event
    assert len([e for e in charts.published if e.type == "charts.share.expired"]) == 1
    listed = (await charts.http.get("/v1/chart-shares", params={"include_revoked": "true"},
                                    headers=charts.auth("dr-a"))).json()["items"]
    assert listed[0]["expired_at"] is not None
    assert (await charts.http.get("/v1/chart-shares", headers=charts.auth("dr-a"))).json()["items"] == []


async def test_replicas_sweeping_at_once_claim_each_grant_once(mongo_client: Any, db_name: str) -> None:
    """Several replicas (stores on one database) sweep concurrently: each expired grant is claimed, and
    its event staged, exactly once; a revoked grant is never expired."""
    db = mongo_client[db_name]
    replicas = [ChartStore(db) for _ in range(3)]
    past = datetime.now(UTC) + timedelta(milliseconds=50)
    grants = [await service.stage_grant(store=replicas[0], owner_id="dr-a", rule="all", chart_id=None,
                                        patient_id=None, practitioner_ids=["dr-b"], office_ids=[], expires_at=past)
              for _ in range(5)]
    await service.revoke_grant(store=replicas[0], grant_id=grants[0]["_id"], owner_id="dr-a")
    await asyncio.sleep(0.1)
    now = datetime.now(UTC)
    claimed = await asyncio.gather(*(service.expire_due(store=r, now=now) for r in replicas for _ in range(2)))
    assert sum(claimed) == 4
    # expired or revoked, every grant is out of the recipient's lookup
    assert (await replicas[0].reach.find_one({"_id": reach_key("p", "dr-b")}))["grants"] == []
    staged = [e for coll in ("chart_grants", "chart_expiries") for g in await db[coll].find({}).to_list()
              for e in g.get("_outbox", []) if e["type"] == "charts.share.expired"]
    assert sorted(e["data"]["grant_id"] for e in staged) == sorted(g["_id"] for g in grants[1:])


async def test_names_come_from_the_projection_on_every_read(charts: Any) -> None:
    idp = charts.identity
    office = await idp.office("dr-a", {"dr-b": "practitioner"})
    await idp.account("dr-a", "Dr Alice Adams")
    await idp.account("dr-b", "Dr Bob Brown")
    pid = await idp.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    assert chart["author_name"] == "Dr Alice Adams"
    grant = await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-b"], office_ids=[office])
    assert grant["recipients"] == [
        {"kind": "practitioner", "id": "dr-b", "name": "Dr Bob Brown", "audience": None, "expires_at": None},
        {"kind": "office", "id": office, "name": "Clinic", "audience": None, "expires_at": None}]
    await charts.http.post(f"/v1/charts/{chart['id']}/notes", json={"text": "ok"}, headers=charts.auth("dr-b"))
    shared = (await charts.http.get("/v1/charts/shared-with-me", headers=charts.auth("dr-b"))).json()["items"]
    assert shared[0]["sharer_name"] == "Dr Alice Adams"
    await idp.account("dr-b", "Dr Bob Brown-Smith")  # a new name shows on the next read
    read = (await charts.http.get(f"/v1/charts/{chart['id']}", headers=charts.auth("dr-a"))).json()
    assert read["author_name"] == "Dr Alice Adams" and read["sharer_name"] is None
    assert [(n["author_id"], n["author_name"]) for n in read["notes"]] == [("dr-b", "Dr Bob Brown-Smith")]


async def test_who_can_see_this_is_for_the_author_only(charts: Any) -> None:
    idp = charts.identity
    office = await idp.office("dr-a", {"dr-b": "practitioner", "dr-c": "practitioner", "st-s": "staff"})
    await idp.connect("dr-a", "dr-d")
    await idp.account("dr-c", "Dr Carol")
    pid = await idp.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    g1 = await charts.share("dr-a", "patient", patient_id=pid, office_ids=[office])
    g2 = await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-c", "dr-d"],
                            expires_at=_in(3600))
    url = f"/v1/charts/{chart['id']}/access"
    for who in ("dr-b", "dr-c", "dr-x"):  # readers and strangers alike
        assert (await charts.http.get(url, headers=charts.auth(who))).status_code == 404
    items = (await charts.http.get(url, headers=charts.auth("dr-a"))).json()["items"]
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {"dr-b", "dr-c", "dr-d"}  # not the author, not the staff member
    assert by_id["dr-c"]["name"] == "Dr Carol" and by_id["dr-c"]["kind"] == "practitioner"
    assert sorted((v["grant_id"], v["through"], v.get("office_id")) for v in by_id["dr-c"]["via"]) == sorted([
        (g1["id"], "office_membership", office), (g2["id"], "practitioner", None)])
    assert [(v["grant_id"], v["through"]) for v in by_id["dr-d"]["via"]] == [(g2["id"], "pin")]
    assert by_id["dr-d"]["via"][0]["expires_at"] is not None
    # office memberships are expanded now: B leaves, E joins
    await idp.leave(office, "dr-b")
    await idp.join(office, "dr-e")
    items = (await charts.http.get(url, headers=charts.auth("dr-a"))).json()["items"]
    assert {i["id"] for i in items} == {"dr-c", "dr-d", "dr-e"}
    await charts.http.delete(f"/v1/chart-shares/{g1['id']}", headers=charts.auth("dr-a"))
    items = (await charts.http.get(url, headers=charts.auth("dr-a"))).json()["items"]
    assert {i["id"] for i in items} == {"dr-c", "dr-d"}


async def test_reads_by_others_are_logged_and_announced(charts: Any) -> None:
    idp = charts.identity
    await idp.connect("dr-a", "dr-b")
    await idp.account("dr-b", "Dr Bob")
    pid = await idp.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    grant = await charts.share("dr-a", "patient", patient_id=pid, practitioner_ids=["dr-b"])
    assert await charts.status("dr-a", chart["id"]) == 200  # the author's own read is not a disclosure
    assert await charts.status("dr-b", chart["id"]) == 200
    assert await charts.status("dr-b", chart["id"]) == 200
    assert await charts.status("dr-x", chart["id"]) == 404  # a refused read reads nothing
    url = f"/v1/charts/{chart['id']}/accesses"
    assert (await charts.http.get(url, headers=charts.auth("dr-b"))).status_code == 404
    log = (await charts.http.get(url, headers=charts.auth("dr-a"))).json()["items"]
    assert [(e["accessor_id"], e["accessor_name"], e["grant_ids"]) for e in log] == [
        ("dr-b", "Dr Bob", [grant["id"]])] * 2
    assert log[0]["at"] >= log[1]["at"]
    events = await wait_for(lambda: (lambda es: es if len(es) == 2 else None)(
        [e for e in charts.published if e.type == "charts.chart.accessed"]))
    assert events[0].data == {"chart_id": chart["id"], "patient_id": pid, "owner_id": "dr-a", "accessor_id": "dr-b",
                              "accessor_kind": "practitioner", "grant_ids": [grant["id"]]}
