"""The sharing rules end to end over HTTP: offices at read time, rules, revocation, duplicates, search."""

from __future__ import annotations

from typing import Any

from clinishare_shared.testing import wait_for


async def test_patient_grant_to_an_office_follows_membership_and_revocation(charts: Any) -> None:
    idp = charts.identity
    office = await idp.office("dr-a", {"dr-b": "practitioner", "staff-s": "staff"})
    pid = await idp.patient("Ada Lovelace", "dr-a")
    other_pid = await idp.patient("Bob", "dr-a")
    existing = await charts.chart("dr-a", pid, title="Existing")
    unrelated = await charts.chart("dr-a", other_pid, title="Other patient")
    grant = await charts.share("dr-a", "patient", patient_id=pid, office_ids=[office])
    later = await charts.chart("dr-a", pid, title="Written later")

    # B, a practitioner in O, sees the patient's existing and new charts, not the other patient's
    assert await charts.shared_ids("dr-b") == [later["id"], existing["id"]]
    assert await charts.status("dr-b", unrelated["id"]) == 404
    note = await charts.http.post(f"/v1/charts/{existing['id']}/notes", json={"text": "Agree"},
                                  headers=charts.auth("dr-b"))
    assert note.status_code == 201
    seen_by_a = (await charts.http.get(f"/v1/charts/{existing['id']}", headers=charts.auth("dr-a"))).json()
    assert [(n["author_id"], n["text"]) for n in seen_by_a["notes"]] == [("dr-b", "Agree")]
    event = await wait_for(lambda: next((e for e in charts.published if e.type == "charts.note.added"), None))
    assert event.data == {"note_id": note.json()["id"], "chart_id": existing["id"], "chart_author_id": "dr-a",
                          "author_id": "dr-b"}

    # C is not in O; the staff member of O is not a practitioner recipient
    assert await charts.status("dr-c", existing["id"]) == 404
    assert (await charts.http.post(f"/v1/charts/{existing['id']}/notes", json={"text": "x"},
                                   headers=charts.auth("dr-c"))).status_code == 404
    assert await charts.shared_ids("dr-c") == []
    assert await charts.status("staff-s", existing["id"], kind="staff") == 404
    assert await charts.shared_ids("staff-s", kind="staff") == []

    # a practitioner who joins O now reads; B leaves O and loses access at once
    await idp.join(office, "dr-d")
    assert await charts.shared_ids("dr-d") == [later["id"], existing["id"]]
    await idp.leave(office, "dr-b")
    assert await charts.status("dr-b", existing["id"]) == 404
    assert await charts.shared_ids("dr-b") == []

    # A revokes: nobody but A reads
    assert (await charts.http.delete(f"/v1/chart-shares/{grant['id']}", headers=charts.auth("dr-a"))).status_code == 204
    assert await charts.status("dr-d", existing["id"]) == 404
    assert await charts.shared_ids("dr-d") == []
    assert await charts.status("dr-a", existing["id"]) == 200


async def test_a_chart_grant_does_not_expose_the_patients_other_charts(charts: Any) -> None:
    pid = await charts.identity.patient("Ada", "dr-a")
    shared = await charts.chart("dr-a", pid)
    sibling = await charts.chart("dr-a", pid)
    await charts.identity.connect("dr-a", "dr-b")
    await charts.share("dr-a", "chart", chart_id=shared["id"], practitioner_ids=["dr-b"])
    assert await charts.shared_ids("dr-b") == [shared["id"]]
    assert await charts.status("dr-b", shared["id"]) == 200
    assert await charts.status("dr-b", sibling["id"]) == 404


async def test_an_all_grant_covers_every_patient_but_only_the_sharers_charts(charts: Any) -> None:
    ada = await charts.identity.patient("Ada", "dr-a", "dr-c")
    bob = await charts.identity.patient("Bob", "dr-a")
    a1 = await charts.chart("dr-a", ada)
    await charts.identity.connect("dr-a", "dr-b")
    await charts.share("dr-a", "all", practitioner_ids=["dr-b"])
    b1 = await charts.chart("dr-a", bob)
    by_c = await charts.chart("dr-c", ada)
    assert await charts.shared_ids("dr-b") == [b1["id"], a1["id"]]
    assert await charts.status("dr-b", b1["id"]) == 200
    assert await charts.status("dr-b", by_c["id"]) == 404


async def test_several_grants_covering_one_chart_list_it_once(charts: Any) -> None:
    office = await charts.identity.office("dr-a", {"dr-b": "practitioner"})
    pid = await charts.identity.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-b"])
    await charts.share("dr-a", "patient", patient_id=pid, office_ids=[office])
    await charts.share("dr-a", "all", practitioner_ids=["dr-b"], office_ids=[office])
    assert await charts.shared_ids("dr-b") == [chart["id"]]


async def test_shared_with_me_is_searchable_and_paginated(charts: Any) -> None:
    office = await charts.identity.office("dr-a", {"dr-b": "practitioner"})
    ada = await charts.identity.patient("Ada Lovelace", "dr-a")
    bob = await charts.identity.patient("Bob Stone", "dr-a")
    await charts.share("dr-a", "all", office_ids=[office])
    ada_charts = [(await charts.chart("dr-a", ada, title=f"Visit {i}"))["id"] for i in range(3)]
    cardio = await charts.chart("dr-a", bob, title="Cardiology")
    assert await charts.shared_ids("dr-b", q="LOVELACE") == list(reversed(ada_charts))
    assert await charts.shared_ids("dr-b", q="cardio") == [cardio["id"]]
    assert await charts.shared_ids("dr-b", q="[") == []

    seen = await charts.walk("/v1/charts/shared-with-me", "dr-b", limit=3)
    assert seen == [cardio["id"], *reversed(ada_charts)]
