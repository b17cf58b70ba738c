"""Chart grants over HTTP: validation, the sharing list, listing and revoking, and the events they stage."""

from __future__ import annotations

from typing import Any

from clinishare_shared.testing import wait_for


async def _grants(charts: Any, who: str, **params: Any) -> list[dict[str, Any]]:
    r = await charts.http.get("/v1/chart-shares", params=params, headers=charts.auth(who))
    assert r.status_code == 200
    return r.json()["items"]


async def test_a_grant_records_consent_and_is_announced_with_ids_only(charts: Any) -> None:
    pid = await charts.identity.patient("Ada Lovelace", "dr-a")
    await charts.chart("dr-a", pid, title="Secret title")
    await charts.identity.connect("dr-a", "dr-b")
    grant = await charts.share("dr-a", "patient", patient_id=pid, practitioner_ids=["dr-b"])
    assert grant["rule"] == "patient" and grant["patient_id"] == pid and grant["chart_id"] is None
    assert grant["practitioner_ids"] == ["dr-b"] and grant["office_ids"] == []
    assert grant["patient_consent"] is True and grant["consent_attested_by"] == "dr-a"
    assert grant["consent_attested_at"] and grant["created_at"] and grant["revoked_at"] is None
    event = await wait_for(lambda: next((e for e in charts.published if e.type == "charts.share.granted"), None))
    assert event.data["grant_id"] == grant["id"] and event.data["owner_id"] == "dr-a"
    assert "Secret" not in event.model_dump_json() and "Ada" not in event.model_dump_json()


async def test_no_consent_no_grant(charts: Any) -> None:
    await charts.identity.connect("dr-a", "dr-b")
    # only JSON true is consent: not false, and not the truthy "yes" or 1 that a lax parser would take
    for consent in (False, "yes", 1):
        r = await charts.http.post("/v1/chart-shares", headers=charts.auth("dr-a"), json={
            "rule": "all", "practitioner_ids": ["dr-b"], "office_ids": [], "patient_consent": consent})
        assert r.status_code == 422 and "patient_consent" in r.text
    assert await _grants(charts, "dr-a", include_revoked=True) == []
    assert await charts.flush() == []


async def test_recipients_must_be_on_my_sharing_list(charts: Any) -> None:
    office = await charts.identity.office("dr-a", {"dr-b": "practitioner", "staff-s": "staff"})
    await charts.identity.connect("dr-a", "dr-c")
    body = await charts.share("dr-a", "all", expect=422, practitioner_ids=["dr-b", "dr-x", "staff-s"],
                              office_ids=[office, "office-y"])
    assert body["invalid_ids"] == ["dr-x", "staff-s", "office-y"]
    assert await _grants(charts, "dr-a") == []
    ok = await charts.share("dr-a", "all", practitioner_ids=["dr-b", "dr-c"], office_ids=[office])
    assert ok["office_ids"] == [office]


async def test_i_cannot_share_with_myself(charts: Any) -> None:
    await charts.identity.office("dr-a", {"dr-b": "practitioner"})
    body = await charts.share("dr-a", "all", expect=422, practitioner_ids=["dr-a", "dr-b"])
    assert body["invalid_ids"] == ["dr-a"]


async def test_a_chart_grant_needs_my_own_chart(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a", "dr-b")
    theirs = await charts.chart("dr-b", pid)
    await charts.identity.connect("dr-a", "dr-c")
    for chart_id in (theirs["id"], "0123456789abcdef01234567"):
        body = await charts.share("dr-a", "chart", expect=422, chart_id=chart_id, practitioner_ids=["dr-c"])
        assert body["invalid_ids"] == [chart_id]
    body = await charts.share("dr-a", "chart", expect=422, practitioner_ids=["dr-c"])  # no chart_id at all
    assert body["status"] == 422


async def test_a_patient_grant_needs_a_patient_of_mine(charts: Any) -> None:
    mine = await charts.identity.patient("Ada", "dr-a")
    not_mine = await charts.identity.patient("Bob", "dr-b")
    await charts.identity.connect("dr-a", "dr-c")
    await charts.share("dr-a", "patient", patient_id=mine, practitioner_ids=["dr-c"])  # in care, no chart yet
    body = await charts.share("dr-a", "patient", expect=422, patient_id=not_mine, practitioner_ids=["dr-c"])
    assert body["invalid_ids"] == [not_mine]


async def test_only_practitioners_share(charts: Any) -> None:
    r = await charts.http.post("/v1/chart-shares", headers=charts.auth("staff-s", "staff"), json={
        "rule": "all", "practitioner_ids": ["dr-b"], "patient_consent": True})
    assert r.status_code == 403


async def test_list_and_revoke_my_grants(charts: Any) -> None:
    await charts.identity.connect("dr-a", "dr-b")
    first = await charts.share("dr-a", "all", practitioner_ids=["dr-b"])
    second = await charts.share("dr-a", "all", practitioner_ids=["dr-b"])
    assert [g["id"] for g in await _grants(charts, "dr-a")] == [second["id"], first["id"]]
    page = (await charts.http.get("/v1/chart-shares", params={"limit": 1}, headers=charts.auth("dr-a"))).json()
    assert [g["id"] for g in page["items"]] == [second["id"]] and page["next_cursor"] == second["id"]
    assert await _grants(charts, "dr-b") == []

    assert (await charts.http.delete(f"/v1/chart-shares/{first['id']}", headers=charts.auth("dr-b"))).status_code == 404
    assert (await charts.http.delete(f"/v1/chart-shares/{first['id']}", headers=charts.auth("dr-a"))).status_code == 204
    assert (await charts.http.delete(f"/v1/chart-shares/{first['id']}", headers=charts.auth("dr-a"))).status_code == 204
    assert [g["id"] for g in await _grants(charts, "dr-a")] == [second["id"]]
    revoked = [g for g in await _grants(charts, "dr-a", include_revoked=True) if g["id"] == first["id"]]
    assert revoked[0]["revoked_at"] is not None

    await wait_for(lambda: any(e.type == "charts.share.revoked" for e in charts.published))
    revocations = [e for e in charts.published if e.type == "charts.share.revoked"]
    assert len(revocations) == 1 and revocations[0].data["grant_id"] == first["id"]
