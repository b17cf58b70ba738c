"""Every write that stages events names the document it staged them in, so the outbox relay's next pass
reads just that document: a kick naming nothing would make the relay sweep every outbox collection."""

from __future__ import annotations

from typing import Any

from clinishare_shared.testing import record_kicks

A, B, PATIENT_B = "prac-a", "prac-b", "pat-b"  # the author, a practitioner it is shared with, B's patient


async def test_each_write_names_its_document_for_the_relay(clinic: Any) -> None:
    kicks = record_kicks(clinic.app.state.infra.relay)

    form = await clinic.create_form(author_all=True)
    edited = await clinic.http.patch(f"/v1/forms/{form['id']}", json={"title": "Renamed"}, headers=clinic.as_(A))
    assert edited.status_code == 200, edited.text
    assigned = await clinic.assign(form["id"], B)
    assert assigned.status_code == 201, assigned.text
    submitted = await clinic.submit(assigned.json()["id"], PATIENT_B)
    assert submitted.status_code == 201, submitted.text
    listed = await clinic.http.get(f"/v1/forms/{form['id']}/submissions", headers=clinic.as_(A))
    assert [s["id"] for s in listed.json()["items"]] == [submitted.json()["id"]]  # A reads B's: an access

    access = await clinic.app.state.store.db["submission_accesses"].find_one({"form_id": form["id"]})
    assert kicks == [("forms", form["id"]), ("forms", form["id"]), ("assignments", assigned.json()["id"]),
                     ("assignments", assigned.json()["id"]), ("submission_accesses", access["_id"])]
    # and what they staged went out, found by those names alone
    published = await clinic.flush()
    assert {"forms.form.created", "forms.shared", "forms.form.updated", "forms.assigned", "forms.submitted",
            "forms.submission.accessed"} <= {e.type for e in published}
