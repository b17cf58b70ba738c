"""Charts over HTTP: writing, Your Charts, search, pagination, reading with notes, editing."""

from __future__ import annotations

from typing import Any

import pytest

from clinishare_shared.testing import wait_for

ENDPOINTS = [
    ("POST", "/v1/charts", {"patient_id": "p", "title": "t", "body": ""}),
    ("GET", "/v1/charts", None),
    ("GET", "/v1/charts/shared-with-me", None),
    ("GET", "/v1/charts/0123456789abcdef01234567", None),
    ("PATCH", "/v1/charts/0123456789abcdef01234567", {"title": "t"}),
    ("POST", "/v1/charts/0123456789abcdef01234567/notes", {"text": "hi"}),
    ("POST", "/v1/chart-shares", {"rule": "all", "practitioner_ids": ["x"], "patient_consent": True}),
    ("GET", "/v1/chart-shares", None),
    ("DELETE", "/v1/chart-shares/0123456789abcdef01234567", None),
]


@pytest.mark.parametrize("method,path,body", ENDPOINTS)
async def test_every_endpoint_needs_a_valid_token(charts: Any, method: str, path: str, body: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        r = await charts.http.request(method, path, json=body, headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_write_a_chart_for_a_patient_in_my_care(charts: Any) -> None:
    pid = await charts.identity.patient("Ada Lovelace", "dr-a")
    chart = await charts.chart("dr-a", pid, title="Annual check", body="BP 120/80")
    assert chart["author_id"] == "dr-a" and chart["patient_id"] == pid
    assert chart["patient_name"] == "Ada Lovelace" and chart["title"] == "Annual check"
    got = (await charts.http.get(f"/v1/charts/{chart['id']}", headers=charts.auth("dr-a"))).json()
    assert got["body"] == "BP 120/80" and got["notes"] == []


async def test_a_patient_outside_my_care_is_refused_and_nothing_stored(charts: Any) -> None:
    pid = await charts.identity.patient("Bob", "dr-b")
    r = await charts.http.post("/v1/charts", json={"patient_id": pid, "title": "t", "body": ""},
                               headers=charts.auth("dr-a"))
    assert r.status_code == 422 and r.json()["invalid_ids"] == [pid]
    assert (await charts.http.get("/v1/charts", headers=charts.auth("dr-a"))).json()["items"] == []


async def test_only_practitioners_write_charts(charts: Any) -> None:
    pid = await charts.identity.patient("Bob", "staff-1")
    r = await charts.http.post("/v1/charts", json={"patient_id": pid, "title": "t", "body": ""},
                               headers=charts.auth("staff-1", "staff"))
    assert r.status_code == 403


async def test_your_charts_are_mine_only_newest_first_and_paginated(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a", "dr-b")
    mine = [(await charts.chart("dr-a", pid, title=f"c{i}"))["id"] for i in range(5)]
    await charts.chart("dr-b", pid)
    assert await charts.walk("/v1/charts", "dr-a", limit=2) == list(reversed(mine))
    bad = await charts.http.get("/v1/charts", params={"cursor": "nope"}, headers=charts.auth("dr-a"))
    assert bad.status_code == 422


async def test_search_matches_title_or_patient_name_case_insensitively(charts: Any) -> None:
    ada = await charts.identity.patient("Ada Lovelace", "dr-a")
    bob = await charts.identity.patient("Bob (Jr.) Stone", "dr-a")
    by_title = await charts.chart("dr-a", bob, title="Cardiology follow-up")
    by_name = await charts.chart("dr-a", ada, title="Visit")

    async def search(q: str) -> list[str]:
        r = await charts.http.get("/v1/charts", params={"q": q}, headers=charts.auth("dr-a"))
        return [c["id"] for c in r.json()["items"]]

    assert await search("CARDIO") == [by_title["id"]]
    assert await search("lovel") == [by_name["id"]]
    assert await search("(jr.)") == [by_title["id"]]  # regex characters are literal
    assert await search(".*") == []
    assert await search("nobody") == []


async def test_edit_my_chart(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid, title="Old", body="old body")
    r = await charts.http.patch(f"/v1/charts/{chart['id']}", json={"title": "New"}, headers=charts.auth("dr-a"))
    assert r.status_code == 200 and r.json()["title"] == "New" and r.json()["body"] == "old body"
    r = await charts.http.patch(f"/v1/charts/{chart['id']}", json={"author_id": "x"}, headers=charts.auth("dr-a"))
    assert r.status_code == 422


async def test_creating_and_editing_a_chart_are_announced_with_ids_and_field_names_only(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    refused = await charts.http.post("/v1/charts", json={"patient_id": "not-mine", "title": "t", "body": ""},
                                     headers=charts.auth("dr-a"))
    assert refused.status_code == 422
    chart = await charts.chart("dr-a", pid, title="Cardiology", body="murmur")
    await charts.identity.connect("dr-a", "dr-b")
    await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-b"])
    path = f"/v1/charts/{chart['id']}"
    assert (await charts.http.patch(path, json={}, headers=charts.auth("dr-a"))).status_code == 200  # no change
    assert (await charts.http.patch(path, json={"title": "x"}, headers=charts.auth("dr-b"))).status_code == 403
    r = await charts.http.patch(path, json={"title": "Cardio", "body": "no murmur"}, headers=charts.auth("dr-a"))
    assert r.status_code == 200

    def lifecycle() -> list[Any]:
        return [e for e in charts.published if e.type in ("charts.chart.created", "charts.chart.updated")]

    await wait_for(lambda: len(lifecycle()) >= 2, message="created and updated")
    created, updated = lifecycle()
    assert created.type == "charts.chart.created" and updated.type == "charts.chart.updated"
    assert created.data == {"chart_id": chart["id"], "author_id": "dr-a", "patient_id": pid}
    assert updated.data == {"chart_id": chart["id"], "author_id": "dr-a", "patient_id": pid,
                            "changed_fields": ["body", "title"]}
    assert len(lifecycle()) == 2  # the refused create, the empty and the forbidden edit announced nothing
    for e in lifecycle():
        assert not {"cardio", "murmur", "ada"} & set(e.model_dump_json().lower().replace('"', " ").split())


async def test_a_reader_may_not_edit_and_a_stranger_may_not_see(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid, title="Original")
    await charts.identity.connect("dr-a", "dr-b")
    await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-b"])
    assert (await charts.http.patch(f"/v1/charts/{chart['id']}", json={"title": "x"},
                                    headers=charts.auth("dr-b"))).status_code == 403
    assert (await charts.http.patch(f"/v1/charts/{chart['id']}", json={"title": "x"},
                                    headers=charts.auth("dr-c"))).status_code == 404
    got = (await charts.http.get(f"/v1/charts/{chart['id']}", headers=charts.auth("dr-a"))).json()
    assert got["title"] == "Original"


async def test_unknown_chart_and_invisible_chart_look_the_same(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    invisible = await charts.http.get(f"/v1/charts/{chart['id']}", headers=charts.auth("dr-c"))
    missing = await charts.http.get("/v1/charts/0123456789abcdef01234567", headers=charts.auth("dr-c"))
    assert invisible.status_code == missing.status_code == 404
    assert invisible.json()["detail"] == missing.json()["detail"]
    note = await charts.http.post(f"/v1/charts/{chart['id']}/notes", json={"text": "hi"}, headers=charts.auth("dr-c"))
    assert note.status_code == 404


async def test_the_author_adds_notes_too_and_they_come_back_oldest_first(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    for text in ("first", "second"):
        r = await charts.http.post(f"/v1/charts/{chart['id']}/notes", json={"text": text}, headers=charts.auth("dr-a"))
        assert r.status_code == 201 and r.json()["author_id"] == "dr-a"
    notes = (await charts.http.get(f"/v1/charts/{chart['id']}", headers=charts.auth("dr-a"))).json()["notes"]
    assert [n["text"] for n in notes] == ["first", "second"]


async def test_reads_carry_an_etag_and_a_stale_if_match_is_412_changing_nothing(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid, title="First")
    url = f"/v1/charts/{chart['id']}"
    etag = (await charts.http.get(url, headers=charts.auth("dr-a"))).headers["etag"]
    # a note does not change the chart's own version
    await charts.http.post(f"{url}/notes", json={"text": "hi"}, headers=charts.auth("dr-a"))
    assert (await charts.http.get(url, headers=charts.auth("dr-a"))).headers["etag"] == etag
    ok = await charts.http.patch(url, json={"title": "Second"}, headers={**charts.auth("dr-a"), "If-Match": etag})
    assert ok.status_code == 200 and ok.headers["etag"] != etag
    stale = await charts.http.patch(url, json={"title": "Third"}, headers={**charts.auth("dr-a"), "If-Match": etag})
    assert stale.status_code == 412 and stale.headers["content-type"] == "application/problem+json"
    now = await charts.http.get(url, headers=charts.auth("dr-a"))
    assert now.json()["title"] == "Second" and now.headers["etag"] == ok.headers["etag"]
    # without If-Match the last writer wins, as before
    assert (await charts.http.patch(url, json={"title": "Fourth"}, headers=charts.auth("dr-a"))).status_code == 200


async def test_parallel_edits_based_on_one_etag_let_exactly_one_through(charts: Any) -> None:
    import asyncio

    pid = await charts.identity.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid, title="First")
    url = f"/v1/charts/{chart['id']}"
    etag = (await charts.http.get(url, headers=charts.auth("dr-a"))).headers["etag"]
    answers = await asyncio.gather(*[charts.http.patch(url, json={"title": f"T{i}"},
                                                       headers={**charts.auth("dr-a"), "If-Match": etag})
                                     for i in range(6)])
    assert sorted(r.status_code for r in answers) == [200] + [412] * 5
