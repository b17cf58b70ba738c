"""Every state change is announced by its event, written with the change (outbox) and relayed."""

import json

from clinishare_shared.events import EVENT_TYPES
from clinishare_shared.testing import wait_for


async def test_account_office_and_membership_events(api, observed):
    owner, colleague, admin = await api.register(name="Dr Owner"), await api.register(), await api.register("staff")
    registered = await observed.wait("identity.account.registered", 3)
    by_id = {e.data["account_id"]: e.data for e in registered}
    assert by_id[owner.id] == {"account_id": owner.id, "kind": "practitioner", "name": "Dr Owner", "email": owner.email}
    assert by_id[admin.id]["kind"] == "staff"

    office = await api.office(owner, (colleague, "practitioner"), (admin, "staff"))
    created = (await observed.wait("identity.office.created"))[0]
    assert created.subject == office["id"] and created.source == "identity"
    assert created.data == {"office_id": office["id"], "owner_id": owner.id, "name": office["name"], "version": 1,
                            "members": [{"account_id": owner.id, "role": "practitioner"}]}
    added = await observed.wait("identity.office.member_added", 2)
    assert [(e.data["account_id"], e.data["version"]) for e in added] == [(colleague.id, 2), (admin.id, 3)]
    assert added[-1].data["members"] == [{"account_id": owner.id, "role": "practitioner"},
                                         {"account_id": colleague.id, "role": "practitioner"},
                                         {"account_id": admin.id, "role": "staff"}]

    await api.client.delete(f"/v1/offices/{office['id']}/members/{colleague.id}", headers=owner.auth)
    removed = (await observed.wait("identity.office.member_removed"))[0]
    assert removed.data == {"office_id": office["id"], "account_id": colleague.id, "version": 4,
                            "members": [{"account_id": owner.id, "role": "practitioner"},
                                        {"account_id": admin.id, "role": "staff"}]}


async def test_connection_events_including_soft_delete(api, observed, bus):
    me, colleague = await api.register(), await api.register()
    conn = await api.connect(me, await api.pin(colleague))
    created = (await observed.wait("identity.connection.created"))[0]
    assert created.data == {"connection_id": conn["id"], "owner_id": me.id, "target_kind": "practitioner",
                            "target_id": colleague.id}
    await api.client.delete(f"/v1/connections/{conn['id']}", headers=colleague.auth)
    deleted = (await observed.wait("identity.connection.deleted"))[0]
    assert deleted.data == {**created.data, "deleted_by": colleague.id}
    # the document stays (soft delete) with nothing left in its outbox (once the relay took out what the
    # observer already received: the broker's confirm comes before the relay's $pull)
    async def settled() -> dict | None:
        doc = await api.app.state.store.connections.find_one({"_id": conn["id"]})
        return doc if doc.get("_outbox") == [] else None

    doc = await wait_for(settled, message="the outbox emptied")
    assert doc["deleted_at"] is not None and doc["deleted_by"] == colleague.id


async def test_patient_events_carry_no_phi(api, observed, bus):
    doc, partner = await api.register(), await api.register()
    await api.office(doc, (partner, "practitioner"))
    patient = await api.patient(doc, "Ada Lovelace", date_of_birth="1985-12-10")
    await api.client.post(f"/v1/patients/{patient['id']}/care-team", json={"practitioner_id": partner.id},
                          headers=doc.auth)
    portal = await api.activate(doc, patient)

    registered = (await observed.wait("identity.patient.registered"))[0]
    assert registered.data == {"patient_id": patient["id"], "registered_by": doc.id, "version": 1,
                               "care_team": [doc.id]}
    changed = (await observed.wait("identity.patient.care_team_changed"))[0]
    assert changed.data == {"patient_id": patient["id"], "changed_by": doc.id, "version": 2,
                            "care_team": [doc.id, partner.id], "added": [partner.id], "removed": []}
    await wait_for(lambda: any(e.data["account_id"] == portal.id for e in observed.of("identity.account.registered")))
    account = next(e for e in observed.of("identity.account.registered") if e.data["account_id"] == portal.id)
    assert account.data == {"account_id": patient["id"], "kind": "patient", "name": None, "email": None}

    await bus.drain()
    wire = json.dumps([e.model_dump(mode="json") for e in observed.events])
    for phi in ("Ada", "Lovelace", patient["email"], "1985-12-10"):
        assert phi not in wire
    # and every event is a valid instance of its catalogue model
    for e in observed.events:
        assert isinstance(e.payload(), EVENT_TYPES[e.type])


async def test_refused_requests_publish_nothing(api, observed, bus, assert_problem):
    owner, stranger = await api.register(), await api.register()
    office = await api.office(owner)
    await observed.wait("identity.office.created")
    await bus.drain()
    before = len(observed.events)
    assert_problem(await api.client.post(f"/v1/offices/{office['id']}/members",
                                         json={"email": stranger.email, "role": "staff"}, headers=owner.auth), 422)
    assert_problem(await api.client.post("/v1/connections", json={"pin": "0000-0000-00"}, headers=owner.auth), 404)
    assert_problem(await api.client.post("/v1/accounts", json={"email": owner.email, "password": "rabbit hole 42",
                                                               "name": "x", "kind": "staff"}), 409)
    await api.app.state.infra.relay.run_once()
    await bus.drain()
    assert len(observed.events) == before
    assert await api.app.state.infra.relay.pending() == 0
