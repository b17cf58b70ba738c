"""Idempotency-Key on charts' creates (the shared middleware; charts is where a second effect would show
as a second chart): same key and body replay, no second chart, also for two at once; another body 422."""

from __future__ import annotations

import asyncio
from typing import Any


async def _count(charts: Any, who: str) -> int:
    r = await charts.http.get("/v1/charts", headers=charts.auth(who), params={"limit": 100})
    return len(r.json()["items"])


async def test_the_same_key_and_body_replay_the_first_answer_without_a_second_chart(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    body = {"patient_id": pid, "title": "Visit", "body": "notes"}
    headers = {**charts.auth("dr-a"), "Idempotency-Key": "5b0c6f0e-key-1"}
    first = await charts.http.post("/v1/charts", json=body, headers=headers)
    again = await charts.http.post("/v1/charts", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _count(charts, "dr-a") == 1

    other = await charts.http.post("/v1/charts", json={**body, "title": "Another"}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    assert await _count(charts, "dr-a") == 1

    # keys are per caller: another practitioner's identical key is a new request
    pid_b = await charts.identity.patient("Bo", "dr-b")
    r = await charts.http.post("/v1/charts", json={**body, "patient_id": pid_b},
                               headers={**charts.auth("dr-b"), "Idempotency-Key": "5b0c6f0e-key-1"})
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]
    # without a key, every POST creates
    for _ in range(2):
        assert (await charts.http.post("/v1/charts", json=body, headers=charts.auth("dr-a"))).status_code == 201
    assert await _count(charts, "dr-a") == 3


async def test_parallel_arrivals_with_one_key_create_once_and_answer_alike(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    body = {"patient_id": pid, "title": "Visit", "body": "notes"}
    headers = {**charts.auth("dr-a"), "Idempotency-Key": "parallel-1"}
    answers = await asyncio.gather(*[charts.http.post("/v1/charts", json=body, headers=headers) for _ in range(8)])
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    assert await _count(charts, "dr-a") == 1


async def test_a_failed_first_attempt_is_not_stored_and_bad_keys_are_refused(charts: Any) -> None:
    headers = {**charts.auth("dr-a"), "Idempotency-Key": "retry-after-fix"}
    pid = await charts.identity.patient("Ada", "dr-a")
    unauthenticated = await charts.http.post("/v1/charts", json={"patient_id": pid, "title": "t", "body": ""},
                                             headers={"Idempotency-Key": "retry-after-fix"})
    assert unauthenticated.status_code == 401
    r = await charts.http.post("/v1/charts", json={"patient_id": pid, "title": "t", "body": ""}, headers=headers)
    assert r.status_code == 201
    bad = await charts.http.post("/v1/charts", json={"patient_id": pid, "title": "t", "body": ""},
                                 headers={**charts.auth("dr-a"), "Idempotency-Key": "x" * 201})
    assert bad.status_code == 422


async def test_posts_that_do_not_create_ignore_the_key(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    # notes are created (201) and so are idempotent; a share revocation is a DELETE and never replayed
    headers = {**charts.auth("dr-a"), "Idempotency-Key": "note-1"}
    first = await charts.http.post(f"/v1/charts/{chart['id']}/notes", json={"text": "one"}, headers=headers)
    again = await charts.http.post(f"/v1/charts/{chart['id']}/notes", json={"text": "one"}, headers=headers)
    assert first.status_code == 201 and again.json() == first.json()
    read = await charts.http.get(f"/v1/charts/{chart['id']}", headers=charts.auth("dr-a"))
    assert len(read.json()["notes"]) == 1
