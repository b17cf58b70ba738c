"""SPEC 10.1 and 10.2 for forms: sharing follows the author's sharing list, names, "who can see this",
and submission reads by others recorded for audit."""

from __future__ import annotations

from clinishare_shared.testing import wait_for

A, B, D, E, OFFICE = "prac-a", "prac-b", "prac-d", "prac-e", "office-o"
PATIENT_OF = {A: "pat-a", B: "pat-b", D: "pat-d", E: "pat-e"}


async def test_deleting_the_connection_withdraws_the_form(clinic):
    form = await clinic.create_form(practitioner_ids=(B,), office_ids=())
    assert (await clinic.http.get(f"/v1/forms/{form['id']}", headers=clinic.as_(B))).status_code == 200
    await clinic.facts.disconnect(clinic.connection_ab, A, B, deleted_by=B)
    assert (await clinic.http.get(f"/v1/forms/{form['id']}", headers=clinic.as_(B))).status_code == 404
    assert form["id"] not in [f["id"] for f in (await clinic.http.get("/v1/forms", headers=clinic.as_(B))).json()["items"]]
    assert (await clinic.assign(form["id"], B)).status_code == 404


async def test_the_author_leaving_the_office_withdraws_the_office_share(clinic):
    form = await clinic.create_form(practitioner_ids=(), office_ids=(OFFICE,))
    assert (await clinic.http.get(f"/v1/forms/{form['id']}", headers=clinic.as_(D))).status_code == 200
    await clinic.facts.leave(OFFICE, A)
    assert (await clinic.http.get(f"/v1/forms/{form['id']}", headers=clinic.as_(D))).status_code == 404


async def test_names_and_who_can_see_this(clinic):
    await clinic.facts.account(A, "Dr Author")
    await clinic.facts.account(B, "Dr Bee")
    form = await clinic.create_form(practitioner_ids=(B,), office_ids=(OFFICE,))
    assert form["author_name"] == "Dr Author"
    assert [(r["kind"], r["id"], r["name"]) for r in form["recipients"]] == [
        ("practitioner", B, "Dr Bee"), ("office", OFFICE, "Study office")]
    seen = (await clinic.http.get(f"/v1/forms/{form['id']}", headers=clinic.as_(B))).json()
    assert seen["sharer_name"] == "Dr Author" and seen["recipients"] == []
    url = f"/v1/forms/{form['id']}/access"
    for who in (B, D, E):
        assert (await clinic.http.get(url, headers=clinic.as_(who))).status_code == 404
    items = (await clinic.http.get(url, headers=clinic.as_(A))).json()["items"]
    assert sorted((i["id"], i["name"], [(v["through"], v.get("office_id")) for v in i["via"]]) for i in items) == [
        (B, "Dr Bee", [("pin", None)]), (D, None, [("office_membership", OFFICE)])]
    await clinic.facts.leave(OFFICE, D)
    items = (await clinic.http.get(url, headers=clinic.as_(A))).json()["items"]
    assert [i["id"] for i in items] == [B]
    await clinic.http.patch(f"/v1/forms/{form['id']}", json={"sharing": {"allow_others": False}},
                            headers=clinic.as_(A))
    assert (await clinic.http.get(url, headers=clinic.as_(A))).json()["items"] == []


async def test_submission_reads_by_others_are_recorded(clinic):
    form = await clinic.create_form(practitioner_ids=(B,), office_ids=(), author_all=True, others_all=True)
    sub = await clinic.assign_and_submit(form["id"], B)  # B asked for it: B's reads are not disclosures
    assert await clinic.visible_patients(form["id"], B) == {PATIENT_OF[B]}
    assert await clinic.visible_patients(form["id"], A) == {PATIENT_OF[B]}  # the author: list and CSV
    assert await clinic.visible_patients(form["id"], E) is None
    events = await wait_for(lambda: (lambda es: es if len(es) == 2 else None)(
        [e for e in clinic.published if e.type == "forms.submission.accessed"]))
    assert {(e.data["accessor_id"], e.data["submission_id"], e.data["patient_id"], e.data["owner_id"])
            for e in events} == {(A, sub["id"], PATIENT_OF[B], B)}
