"""SPEC section 2: services keep a local projection of identity's data "so that reading shared data keeps
working while identity is down". Proven with the real thing: the identity process is stopped."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("stack", ["processes"], indirect=True)  # identity must be its own process to stop it
async def test_shared_chart_stays_readable_while_identity_is_down(stack, people, eventually) -> None:
    a = await people.signup("Dr Alice Able")
    c = await people.signup("Dr Carol Clark")
    office_id = (await a.post("/v1/offices", json={"name": "Harbour Clinic"})).json()["id"]
    assert (await a.post(f"/v1/offices/{office_id}/members",
                         json={"email": c.account["email"], "role": "practitioner"})).status_code == 201
    patient_id = (await a.post("/v1/patients", json={"name": "Jane Roe", "email": "jane@patient-mail.org"})).json()["id"]
    chart_id = (await a.post("/v1/charts", json={"patient_id": patient_id, "title": "t", "body": "b"})).json()["id"]
    grant = await a.post("/v1/chart-shares", json={"rule": "all", "office_ids": [office_id], "practitioner_ids": [],
                                                   "patient_consent": True})
    assert grant.status_code == 201, grant.text
    await eventually(lambda: c.get("/v1/charts/shared-with-me"),
                     lambda r: [i["id"] for i in r.json()["items"]] == [chart_id], message="C sees the chart")

    identity = stack.processes["identity"]
    identity.terminate()
    identity.wait(timeout=15)
    assert (await c.get("/v1/me")).status_code == 502  # identity really is gone

    # the office membership, the grant and C's token are all checked without identity
    shared = await c.get("/v1/charts/shared-with-me")
    assert [i["id"] for i in shared.json()["items"]] == [chart_id]
    assert (await c.get(f"/v1/charts/{chart_id}")).status_code == 200
    assert (await c.post(f"/v1/charts/{chart_id}/notes", json={"text": "seen"})).status_code == 201
