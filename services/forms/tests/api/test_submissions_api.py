"""Assignments, the portal and submissions over HTTP, in the multi-clinic study scenario."""

from __future__ import annotations

import csv
import io

import pytest

from clinishare_shared.testing import wait_for

A, B, D, E, OFFICE = "prac-a", "prac-b", "prac-d", "prac-e", "office-o"


@pytest.mark.parametrize("author_all", [False, True])
@pytest.mark.parametrize("others_all", [False, True])
async def test_who_sees_which_submission_follows_the_flags(clinic, author_all, others_all):
    form = await clinic.create_form(author_all=author_all, others_all=others_all)
    for who in (A, B, D):
        await clinic.assign_and_submit(form["id"], who)
    everyone = {"pat-a", "pat-b", "pat-d"}
    assert await clinic.visible_patients(form["id"], A) == (everyone if author_all else {"pat-a"})
    assert await clinic.visible_patients(form["id"], B) == (everyone if others_all else {"pat-b"})
    assert await clinic.visible_patients(form["id"], D) == (everyone if others_all else {"pat-d"})
    assert await clinic.visible_patients(form["id"], E) is None
    submitted = await wait_for(lambda: len([e for e in clinic.published if e.type == "forms.submitted"]) == 3
                               and [e for e in clinic.published if e.type == "forms.submitted"])
    may_see = {e.data["practitioner_id"]: e.data["author_may_see"] for e in submitted}
    assert may_see == {A: True, B: author_all, D: author_all}


async def test_office_member_who_leaves_stops_administering_and_seeing(clinic):
    form = await clinic.create_form(others_all=True)
    await clinic.assign_and_submit(form["id"], A)
    await clinic.assign_and_submit(form["id"], D)
    assert await clinic.visible_patients(form["id"], D) == {"pat-a", "pat-d"}
    await clinic.facts.leave(OFFICE, D)
    assert (await clinic.assign(form["id"], D)).status_code == 404
    assert (await clinic.http.get(f"/v1/forms/{form['id']}", headers=clinic.as_(D))).status_code == 404
    assert await clinic.visible_patients(form["id"], D) == {"pat-d"}


async def test_assign_needs_a_patient_in_my_care_and_a_form_i_administer(clinic):
    form = await clinic.create_form(practitioner_ids=(B,), office_ids=())
    resp = await clinic.assign(form["id"], B, patient="pat-d")
    assert resp.status_code == 422 and resp.json()["invalid_ids"] == ["pat-d"]
    assert (await clinic.assign(form["id"], D)).status_code == 404  # not shared with D's office this time
    assert (await clinic.assign(form["id"], E)).status_code == 404
    resp = await clinic.assign(form["id"], B)
    assert resp.status_code == 201
    body = resp.json()
    assert body == {**body, "form_id": form["id"], "patient_id": "pat-b", "practitioner_id": B,
                    "status": "pending", "form_version": 1}
    assigned = await wait_for(lambda: [e for e in clinic.published if e.type == "forms.assigned"])
    assert assigned[0].data["assignment_id"] == body["id"] and assigned[0].data["author_id"] == A


async def test_identity_breaks_the_tie_when_the_projection_lags(clinic):
    form = await clinic.create_form()
    assert (await clinic.assign(form["id"], B, patient="pat-new")).status_code == 422
    clinic.directory.patients["pat-new"] = {"id": "pat-new"}  # identity already has her in B's care
    assert (await clinic.assign(form["id"], B, patient="pat-new")).status_code == 201


async def test_the_portal_shows_my_pending_forms_in_the_version_i_was_given(clinic):
    form = await clinic.create_form(title="v1 title")
    first = (await clinic.assign(form["id"], B)).json()
    v2_fields = [{"type": "checkbox", "key": "consent", "label": "I agree", "required": True}]
    resp = await clinic.http.patch(f"/v1/forms/{form['id']}", json={"title": "v2 title", "fields": v2_fields},
                                   headers=clinic.as_(A))
    assert resp.json()["version"] == 2
    second = (await clinic.assign(form["id"], B)).json()
    assert (first["form_version"], second["form_version"]) == (1, 2)

    portal = await clinic.http.get("/v1/portal/forms", headers=clinic.as_("pat-b", "patient"))
    assert portal.status_code == 200
    by_id = {p["id"]: p for p in portal.json()["items"]}
    assert by_id[first["id"]]["title"] == "v1 title"
    assert [f["key"] for f in by_id[first["id"]]["fields"]] == ["name_of_study", "weight", "smoker", "pain"]
    assert by_id[second["id"]]["title"] == "v2 title"
    assert (await clinic.http.get("/v1/portal/forms", headers=clinic.as_("pat-d", "patient"))).json()["items"] == []
    assert (await clinic.http.get("/v1/portal/forms", headers=clinic.as_(B))).status_code == 403

    # the first assignment is still validated against version 1
    resp = await clinic.submit(first["id"], "pat-b", {"consent": True})
    assert resp.status_code == 422
    assert {e["field"] for e in resp.json()["errors"]} == {"name_of_study", "smoker", "consent"}
    resp = await clinic.submit(first["id"], "pat-b")
    assert resp.status_code == 201 and resp.json()["form_version"] == 1
    assert (await clinic.submit(second["id"], "pat-b", {"consent": True})).status_code == 201
    portal = await clinic.http.get("/v1/portal/forms", headers=clinic.as_("pat-b", "patient"))
    assert portal.json()["items"] == []

    exported = await clinic.http.get(f"/v1/forms/{form['id']}/submissions.csv", headers=clinic.as_(B))
    header = next(csv.reader(io.StringIO(exported.text)))
    assert header == ["name_of_study", "weight", "smoker", "pain", "consent", "submitted_at", "patient_id",
                      "practitioner_id"]


async def test_submitting(clinic):
    form = await clinic.create_form()
    assignment = (await clinic.assign(form["id"], B)).json()
    bad = {"name_of_study": 7, "weight": 900, "smoker": "sometimes", "pain": 11, "shoe_size": 44}
    resp = await clinic.submit(assignment["id"], "pat-b", bad)
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in resp.json()["errors"]] == ["name_of_study", "weight", "smoker", "pain", "shoe_size"]
    assert all(e["reason"] for e in resp.json()["errors"])
    assert "sometimes" not in resp.text  # answers are not echoed back

    assert (await clinic.submit(assignment["id"], "pat-d")).status_code == 404  # not her assignment
    assert (await clinic.submit("000000000000000000000000", "pat-b")).status_code == 404
    resp = await clinic.http.post(f"/v1/assignments/{assignment['id']}/submission", json={"answers": {}},
                                  headers=clinic.as_(B))
    assert resp.status_code == 403  # practitioners do not submit

    resp = await clinic.submit(assignment["id"], "pat-b")
    assert resp.status_code == 201
    body = resp.json()
    assert body["answers"] == {"name_of_study": "baseline", "weight": 72.5, "smoker": "no", "pain": 3}
    assert {k: body[k] for k in ("assignment_id", "form_id", "patient_id", "practitioner_id")} == {
        "assignment_id": assignment["id"], "form_id": form["id"], "patient_id": "pat-b", "practitioner_id": B}
    assert body["id"] and body["submitted_at"]
    assert (await clinic.submit(assignment["id"], "pat-b")).status_code == 409

    listed = (await clinic.http.get(f"/v1/forms/{form['id']}/submissions", headers=clinic.as_(B))).json()
    assert listed["items"] == [body] and listed["next_cursor"] is None
    submitted = await wait_for(lambda: [e for e in clinic.published if e.type == "forms.submitted"])
    assert "baseline" not in submitted[0].model_dump_json()


async def test_csv_is_safe_to_open_in_a_spreadsheet(clinic):
    fields = [{"type": "text", "key": "note", "label": "Note"},
              {"type": "multi_choice", "key": "symptoms", "label": "Symptoms", "options": ["cough", "fever"]},
              {"type": "number", "key": "delta", "label": "Change"}]
    form = await clinic.create_form(fields=fields)
    for who, answers in [(A, {"note": "=HYPERLINK(\"http://x\")", "symptoms": ["fever", "cough"], "delta": -2}),
                         (D, {"note": "@SUM(A1)"})]:
        a = (await clinic.assign(form["id"], who)).json()
        assert (await clinic.submit(a["id"], f"pat-{who[-1]}", answers)).status_code == 201
    resp = await clinic.http.get(f"/v1/forms/{form['id']}/submissions.csv", headers=clinic.as_(A))
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 1  # A sees only her own patient's: author_sees_all_submissions is off
    assert rows[0]["note"] == "'=HYPERLINK(\"http://x\")"
    assert rows[0]["symptoms"] == "cough; fever" and rows[0]["delta"] == "'-2"
    assert rows[0]["patient_id"] == "pat-a" and rows[0]["practitioner_id"] == A and rows[0]["submitted_at"]
    rows = list(csv.DictReader(io.StringIO((await clinic.http.get(
        f"/v1/forms/{form['id']}/submissions.csv", headers=clinic.as_(D))).text)))
    assert [r["note"] for r in rows] == ["'@SUM(A1)"]


async def test_submissions_are_paginated(clinic):
    form = await clinic.create_form()
    for _ in range(3):
        await clinic.assign_and_submit(form["id"], B)
    page = (await clinic.http.get(f"/v1/forms/{form['id']}/submissions?limit=2", headers=clinic.as_(B))).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = (await clinic.http.get(f"/v1/forms/{form['id']}/submissions?limit=2&cursor={page['next_cursor']}",
                                  headers=clinic.as_(B))).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
