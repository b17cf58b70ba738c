"""Every identity write that stages events tells the outbox relay which document it staged them in, so
the relay's next pass reads that document alone; a kick naming nothing would sweep every outbox
collection after each write."""

from __future__ import annotations

from typing import Any

from clinishare_shared.testing import record_kicks


async def test_every_write_names_the_document_it_staged(api: Any) -> None:
    kicks = record_kicks(api.app.state.infra.relay)
    owner, colleague = await api.register(), await api.register()
    r = await api.client.post("/v1/me/share-pin/rotate", headers=owner.auth)
    assert r.status_code == 200, r.text
    office = await api.office(owner, (colleague, "practitioner"))
    r = await api.client.post(f"/v1/offices/{office['id']}/share-pin/rotate", headers=owner.auth)
    assert r.status_code == 200, r.text
    r = await api.client.delete(f"/v1/offices/{office['id']}/members/{colleague.id}", headers=owner.auth)
    assert r.status_code == 204, r.text
    conn = await api.connect(colleague, await api.pin(owner))
    r = await api.client.delete(f"/v1/connections/{conn['id']}", headers=colleague.auth)
    assert r.status_code == 204, r.text
    await api.connect(owner, await api.pin(colleague))
    patient = await api.patient(owner)
    r = await api.client.post(f"/v1/patients/{patient['id']}/care-team", json={"practitioner_id": colleague.id},
                              headers=owner.auth)
    assert r.status_code == 200, r.text
    r = await api.client.delete(f"/v1/patients/{patient['id']}/care-team/{colleague.id}", headers=owner.auth)
    assert r.status_code == 204, r.text
    await api.activate(owner, patient)

    assert all(c is not None and d is not None for c, d in kicks), f"a write asked for a full sweep: {kicks}"
    assert kicks == [
        ("accounts", owner.id), ("accounts", colleague.id), ("accounts", owner.id),  # two sign-ups, a PIN
        ("offices", office["id"]), ("offices", office["id"]), ("offices", office["id"]), ("offices", office["id"]),
        ("connections", conn["id"]), ("connections", conn["id"]), kicks[9],
        ("patients", patient["id"]), ("patients", patient["id"]), ("patients", patient["id"]),
        ("accounts", patient["id"]),  # the portal account has the patient's id
    ]
    assert kicks[9][0] == "connections" and kicks[9][1] != conn["id"]
