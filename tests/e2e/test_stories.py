"""The seed article's stories, through HTTP only, against both the one-process system and the five
services as separate processes on the real RabbitMQ (see conftest.py: the `stack` fixture runs each
test in both modes)."""

from __future__ import annotations

import email
from typing import Any

PHI_WORDS = ["Jane Roe", "Rash follow-up", "lab-results", "itchy", "John Doe", "Mary Major"]


def items(r: Any) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return r.json()["items"]


def assert_no_phi(text: str) -> None:
    for word in PHI_WORDS:
        assert word.lower() not in text.lower(), f"PHI {word!r} leaked"


async def test_connect_by_pin_then_share_a_chart_with_an_office(stack, people, eventually) -> None:
    a = await people.signup("Dr Alice Able")
    b = await people.signup("Dr Bob Baker")
    c = await people.signup("Dr Carol Clark")
    e = await people.signup("Dr Evan Ellis")
    s = await people.signup("Sam Staff", kind="staff")

    # connect by PIN: B gives A the PIN; A's sharing list now holds B, and B hears of it
    pin = (await b.get("/v1/me/share-pin")).json()["pin"]
    conn = await a.post("/v1/connections", json={"pin": pin.lower()})
    assert conn.status_code == 201, conn.text
    assert conn.json()["target_kind"] == "practitioner" and conn.json()["target_id"] == b.id
    sharing = (await a.get("/v1/sharing-list")).json()
    assert {"id": b.id, "name": "Dr Bob Baker", "via": "pin"} in sharing["practitioners"]
    await eventually(lambda: b.get("/v1/notifications"), lambda r: len(items(r)) == 1,
                     message="B notified of the connection")

    # A's office O with C as practitioner and S as staff
    office = await a.post("/v1/offices", json={"name": "Harbour Clinic"})
    assert office.status_code == 201, office.text
    office_id = office.json()["id"]
    for who, role in ((c, "practitioner"), (e, "practitioner"), (s, "staff")):
        r = await a.post(f"/v1/offices/{office_id}/members", json={"email": who.account["email"], "role": role})
        assert r.status_code == 201, r.text

    patient = await a.post("/v1/patients", json={"name": "Jane Roe", "email": "jane.roe@patient-mail.org"})
    patient_id = patient.json()["id"]
    chart = await a.post("/v1/charts", json={"patient_id": patient_id, "title": "Rash follow-up",
                                             "body": "itchy for two weeks"})
    assert chart.status_code == 201, chart.text
    chart_id = chart.json()["id"]

    refused = await a.post("/v1/chart-shares", json={"rule": "patient", "patient_id": patient_id,
                                                     "office_ids": [office_id], "practitioner_ids": [],
                                                     "patient_consent": False})
    assert refused.status_code == 422
    grant = await a.post("/v1/chart-shares", json={"rule": "patient", "patient_id": patient_id,
                                                   "office_ids": [office_id], "practitioner_ids": [],
                                                   "patient_consent": True})
    assert grant.status_code == 201, grant.text

    # C, a current practitioner of O, sees it in Charts Shared With You and is notified; so is nobody else
    await eventually(lambda: c.get("/v1/charts/shared-with-me"),
                     lambda r: [i["id"] for i in items(r)] == [chart_id], message="C sees the chart")
    # every current practitioner of O is notified once (one event, resolved at processing time)
    for member in (c, e):
        inbox = items(await eventually(lambda member=member: member.get("/v1/notifications"), lambda r: items(r),
                                       message="a practitioner of O notified"))
        assert [n["type"] for n in inbox] == ["charts.share.granted"]
        assert_no_phi(inbox[0]["title"] + inbox[0]["link"])
    assert (await b.get(f"/v1/charts/{chart_id}")).status_code == 404
    staff_view = await s.get("/v1/charts/shared-with-me")  # the grant is for O's practitioners, not its staff
    assert staff_view.status_code == 200 and items(staff_view) == []
    assert len(items(await b.get("/v1/notifications"))) == 1  # only the connection
    assert items(await s.get("/v1/notifications")) == []
    assert items(await a.get("/v1/notifications")) == []  # the sharer is never told of their own share

    # C adds a note; A reads it on the chart
    note = await c.post(f"/v1/charts/{chart_id}/notes", json={"text": "agree, add antihistamine"})
    assert note.status_code == 201, note.text
    mine = await a.get(f"/v1/charts/{chart_id}")
    assert [n["author_id"] for n in mine.json()["notes"]] == [c.id]

    # C leaves O and loses access; A revokes and nobody but A sees the chart
    assert (await a.delete(f"/v1/offices/{office_id}/members/{c.id}")).status_code == 204
    await eventually(lambda: c.get(f"/v1/charts/{chart_id}"), lambda r: r.status_code == 404,
                     message="C lost access after leaving O")
    assert (await a.delete(f"/v1/chart-shares/{grant.json()['id']}")).status_code == 204
    assert (await a.get(f"/v1/charts/{chart_id}")).status_code == 200

    # e-mails went out without PHI
    await eventually(lambda: _async(stack.mailbox.messages), lambda msgs: len(msgs) >= 2, message="e-mails")
    for envelope in stack.mailbox.messages:
        message = email.message_from_bytes(envelope.original_content)
        assert_no_phi(message.as_string())


async def _async(value: Any) -> Any:
    return value


async def test_label_a_document_for_a_patient_and_a_practitioner(stack, people, eventually) -> None:
    a = await people.signup("Dr Alice Able")
    b = await people.signup("Dr Bob Baker")
    pin = (await b.get("/v1/me/share-pin")).json()["pin"]
    assert (await a.post("/v1/connections", json={"pin": pin})).status_code == 201
    patient_id, patient = await people.patient(a, "Mary Major")
    other_id, other = await people.patient(a, "John Doe")

    up = await a.post("/v1/documents", files={"file": ("lab-results.pdf", b"%PDF-1.4 results", "application/pdf")},
                      data={"patient_id": patient_id})
    assert up.status_code == 201, up.text
    doc = up.json()
    assert doc["size"] == len(b"%PDF-1.4 results") and doc["patient_id"] == patient_id

    # a workspace document cannot go to another patient: the whole call is refused, nothing changes
    bad = await a.post("/v1/documents/labels", json={"document_ids": [doc["id"]],
                                                     "add": {"patient_ids": [other_id], "practitioner_ids": [b.id]}})
    assert bad.status_code == 422
    assert items(await b.get("/v1/documents", params={"scope": "shared"})) == []

    ok = await a.post("/v1/documents/labels", json={"document_ids": [doc["id"]],
                                                    "add": {"labels": ["labs"], "patient_ids": [patient_id],
                                                            "practitioner_ids": [b.id]}})
    assert ok.status_code == 200, ok.text

    portal = items(await patient.get("/v1/portal/documents"))
    assert [d["id"] for d in portal] == [doc["id"]]
    content = await patient.get(f"/v1/documents/{doc['id']}/content")
    assert content.status_code == 200 and content.content == b"%PDF-1.4 results"
    assert items(await other.get("/v1/portal/documents")) == []
    assert (await other.get(f"/v1/documents/{doc['id']}")).status_code == 404
    assert [d["id"] for d in items(await b.get("/v1/documents", params={"scope": "shared"}))] == [doc["id"]]

    await eventually(lambda: patient.get("/v1/notifications"), lambda r: len(items(r)) == 1,
                     message="the patient is notified")
    await eventually(lambda: b.get("/v1/notifications"),
                     lambda r: any(n["type"] == "documents.shared" and n["link"] == f"/v1/documents/{doc['id']}"
                                   for n in items(r)),
                     message="B is notified")
    assert items(await other.get("/v1/notifications")) == []
    for n in items(await patient.get("/v1/notifications")) + items(await b.get("/v1/notifications")):
        assert_no_phi(n["title"] + n["link"])


async def test_a_smartform_across_two_clinics(stack, people, eventually) -> None:
    a = await people.signup("Dr Alice Able")   # author, office O
    d = await people.signup("Dr Dana Dale")    # practitioner of O
    b = await people.signup("Dr Bob Baker")    # another clinic, connected by PIN
    office_id = (await a.post("/v1/offices", json={"name": "Study Clinic"})).json()["id"]
    assert (await a.post(f"/v1/offices/{office_id}/members",
                         json={"email": d.account["email"], "role": "practitioner"})).status_code == 201
    pin = (await b.get("/v1/me/share-pin")).json()["pin"]
    assert (await a.post("/v1/connections", json={"pin": pin})).status_code == 201

    form = await a.post("/v1/forms", json={
        "title": "Sleep study",
        "fields": [{"type": "scale", "key": "quality", "label": "Sleep quality", "required": True, "min": 1, "max": 5},
                   {"type": "text", "key": "notes", "label": "Notes", "required": False}],
        "sharing": {"allow_others": True, "practitioner_ids": [b.id], "office_ids": [office_id],
                    "author_sees_all_submissions": True, "others_see_all_submissions": False},
    })
    assert form.status_code == 201, form.text
    form_id = form.json()["id"]

    pb_id, pb = await people.patient(b, "John Doe")
    pd_id, pd = await people.patient(d, "Mary Major")
    await eventually(lambda: b.get("/v1/forms"), lambda r: any(f["id"] == form_id and not f["can_edit"] for f in items(r)),
                     message="the form is shared with B")
    ab = await eventually(lambda: b.post(f"/v1/forms/{form_id}/assignments", json={"patient_id": pb_id}),
                          lambda r: r.status_code == 201, message="B assigns")
    ad = await eventually(lambda: d.post(f"/v1/forms/{form_id}/assignments", json={"patient_id": pd_id}),
                          lambda r: r.status_code == 201, message="D assigns")

    for patient, assignment, quality in ((pb, ab.json(), 4), (pd, ad.json(), 2)):
        await eventually(lambda patient=patient: patient.get("/v1/portal/forms"),
                         lambda r: len(items(r)) == 1, message="pending assignment")
        sub = await patient.post(f"/v1/assignments/{assignment['id']}/submission",
                                 json={"answers": {"quality": quality, "notes": "itchy"}})
        assert sub.status_code == 201, sub.text
        again = await patient.post(f"/v1/assignments/{assignment['id']}/submission",
                                   json={"answers": {"quality": quality}})
        assert again.status_code == 409

    def patients_seen(r: Any) -> set[str]:
        return {s["patient_id"] for s in items(r)}

    assert patients_seen(await a.get(f"/v1/forms/{form_id}/submissions")) == {pb_id, pd_id}
    assert patients_seen(await b.get(f"/v1/forms/{form_id}/submissions")) == {pb_id}
    assert patients_seen(await d.get(f"/v1/forms/{form_id}/submissions")) == {pd_id}
    csv_b = await b.get(f"/v1/forms/{form_id}/submissions.csv")
    assert csv_b.status_code == 200 and pb_id in csv_b.text and pd_id not in csv_b.text

    # submission notifications: the assigner always, the author because author_sees_all_submissions
    def submitted_about(r: Any, form: str) -> int:
        return sum(1 for n in items(r)
                   if n["type"] == "forms.submitted" and n["link"] == f"/v1/forms/{form}/submissions")

    await eventually(lambda: a.get("/v1/notifications"), lambda r: submitted_about(r, form_id) == 2,
                     message="the author hears of both submissions")
    await eventually(lambda: b.get("/v1/notifications"), lambda r: submitted_about(r, form_id) == 1,
                     message="B hears of its patient's submission")
    await eventually(lambda: d.get("/v1/notifications"), lambda r: submitted_about(r, form_id) == 1,
                     message="D hears of its patient's submission")
    assert sum(1 for n in items(await pb.get("/v1/notifications")) if n["type"] == "forms.assigned") == 1


async def test_who_can_see_it_and_the_patient_sees_who_read_it(stack, people, eventually) -> None:
    """SPEC 10.1/10.2: share a chart, the recipient reads it, the author asks who can see it and who read
    it, and the patient sees that read in the portal's accounting of disclosures (hash chain intact)."""
    a = await people.signup("Dr Alice Able")
    b = await people.signup("Dr Bob Baker")
    pin = (await b.get("/v1/me/share-pin")).json()["pin"]
    assert (await a.post("/v1/connections", json={"pin": pin})).status_code == 201
    patient_id, jane = await people.patient(a, "Jane Roe")
    chart = (await a.post("/v1/charts", json={"patient_id": patient_id, "title": "Rash follow-up",
                                              "body": "itchy for two weeks"})).json()
    grant = await a.post("/v1/chart-shares", json={"rule": "chart", "chart_id": chart["id"],
                                                   "practitioner_ids": [b.id], "patient_consent": True})
    assert grant.status_code == 201, grant.text
    assert grant.json()["recipients"][0]["name"] == "Dr Bob Baker"

    # B reads the chart (through the grant); the author's name is on it
    read = await eventually(lambda: b.get(f"/v1/charts/{chart['id']}"), lambda r: r.status_code == 200,
                            message="B reads the shared chart")
    assert read.json()["author_name"] == "Dr Alice Able" and read.json()["sharer_name"] == "Dr Alice Able"

    # who can see this (the author only) and who read it
    access = items(await a.get(f"/v1/charts/{chart['id']}/access"))
    assert [(i["id"], i["name"], [v["through"] for v in i["via"]]) for i in access] == [
        (b.id, "Dr Bob Baker", ["pin"])]
    assert (await b.get(f"/v1/charts/{chart['id']}/access")).status_code == 404
    accesses = items(await a.get(f"/v1/charts/{chart['id']}/accesses"))
    assert [(x["accessor_id"], x["accessor_name"]) for x in accesses] == [(b.id, "Dr Bob Baker")]

    # the patient sees the share and the read in the portal; the care team sees the same
    def shows_the_read(r: Any) -> bool:
        return r.status_code == 200 and [i["action"] for i in r.json()["items"]] == ["accessed", "shared"]

    portal = await eventually(lambda: jane.get("/v1/portal/disclosures"), shows_the_read,
                              message="the read reaches the patient's disclosures")
    accessed, shared = portal.json()["items"]
    assert (accessed["accessor_id"], accessed["accessor_name"], accessed["item_id"]) == (b.id, "Dr Bob Baker",
                                                                                       chart["id"])
    assert shared["discloser_name"] == "Dr Alice Able" and shared["consent_attested_by"] == a.id
    assert_no_phi(portal.text)
    team = await a.get(f"/v1/patients/{patient_id}/disclosures")
    assert [i["id"] for i in team.json()["items"]] == [i["id"] for i in portal.json()["items"]]
    assert (await a.get(f"/v1/patients/{patient_id}/disclosures/verify")).json() == {
        "ok": True, "entries": 2, "first_bad": None}
    # another patient does not see Jane's
    _, john = await people.patient(a, "John Doe")
    assert (await john.get(f"/v1/patients/{patient_id}/disclosures")).status_code == 404
    assert items(await john.get("/v1/portal/disclosures")) == []

    # deleting the connection ends B's access at once
    conn = items(await b.get("/v1/connections"))[0]
    assert (await b.delete(f"/v1/connections/{conn['id']}")).status_code == 204
    await eventually(lambda: b.get(f"/v1/charts/{chart['id']}"), lambda r: r.status_code == 404,
                     message="B lost access with the connection")
    assert items(await a.get(f"/v1/charts/{chart['id']}/access")) == []
