"""With the real RabbitMQ: what the service publishes reaches a bound queue, and its identity projection
follows identity events (office membership now decides who reads an office share)."""

from __future__ import annotations

from typing import Any

from clinishare_shared.events import DocumentShared, Envelope, make_event
from clinishare_shared.testing import delete_broker_objects, outbox_emptied, wait_for

ME, COLLEAGUE, STAFF = "dr-me", "dr-colleague", "staff-1"


async def start(rabbit: Any, start_documents: Any, unique: str) -> Any:
    bus, identity = await rabbit(), await rabbit()
    return await start_documents(bus=bus, identity_bus=identity, queue_name=f"documents-{unique}",
                                 event_exchange=f"test.{unique}")


async def test_documents_events_reach_a_bound_queue(rabbit: Any, start_documents: Any, unique: str,
                                                    eventually: Any) -> None:
    api = await start(rabbit, start_documents, unique)
    office = await api.office(ME, **{COLLEAGUE: "practitioner"})
    patient = await api.patient(ME)
    doc = await api.upload_ok(ME, b"confidential", filename="Jane Doe biopsy.pdf", patient_id=patient)
    share = {"practitioner_ids": [COLLEAGUE], "offices": [{"office_id": office, "audience": "staff"}],
             "patient_ids": [patient], "labels": ["oncology"]}
    assert (await api.label(ME, [doc["id"]], add=share)).status_code == 200

    shared = await eventually(lambda: [e for e in api.documents_events() if e.type == "documents.shared"],
                              message="documents.shared on the observer queue")
    assert len(shared) == 1
    event = shared[0]
    assert event.source == "documents" and event.subject == doc["id"]
    assert event.data == {"document_id": doc["id"], "owner_id": ME, "workspace_patient_id": patient,
                          "patient_ids": [patient], "practitioner_ids": [COLLEAGUE],
                          "offices": [{"office_id": office, "audience": "staff"}], "expires_at": None}
    body = event.model_dump_json()
    assert "Jane Doe" not in body and "biopsy" not in body and "oncology" not in body

    assert (await api.label(ME, [doc["id"]], remove={"practitioner_ids": [COLLEAGUE]})).status_code == 200
    unshared = await eventually(lambda: [e for e in api.documents_events() if e.type == "documents.unshared"],
                                message="documents.unshared on the observer queue")
    assert unshared[0].data["practitioner_ids"] == [COLLEAGUE] and unshared[0].data["patient_ids"] == []
    await outbox_emptied(api.app.state.infra.relay)


async def test_projection_follows_office_membership(rabbit: Any, start_documents: Any, unique: str) -> None:
    api = await start(rabbit, start_documents, unique)
    office = await api.office(ME, **{STAFF: "staff"})
    doc = await api.upload_ok(ME, b"x")
    await api.label(ME, [doc["id"]], add={"offices": [{"office_id": office, "audience": "staff"}]})
    assert await api.shared_ids(STAFF, "staff") == [doc["id"]]

    await api.remove_member(office, STAFF)  # returns once the service processed it
    assert await api.shared_ids(STAFF, "staff") == []
    await api.add_member(office, STAFF, "staff")
    assert await api.shared_ids(STAFF, "staff") == [doc["id"]]
    await api.add_member(office, "staff-2", "staff")
    assert await api.shared_ids("staff-2", "staff") == [doc["id"]]


async def test_a_crashed_label_call_is_announced_once_on_the_broker(rabbit: Any, start_documents: Any, unique: str,
                                                                    amqp_url: str) -> None:
    """A label call dies after the first of three documents; a replica started afterwards rolls it forward.
    On the real broker, each document's ``documents.shared`` arrives exactly once."""
    api = await start(rabbit, start_documents, unique)
    got: list[Envelope] = []

    async def count(event: Envelope) -> None:
        got.append(event)

    await api.bus.subscribe(f"count-{unique}", ["documents.shared"], count)
    try:
        await api.connect(ME, "practitioner", COLLEAGUE)
        ids = [(await api.upload_ok(ME, bytes([i])))["id"] for i in range(3)]
        await api.label_that_dies_after_one_document(ME, ids, add={"practitioner_ids": [COLLEAGUE]})
        replica = await start_documents(bus=await rabbit(), identity_bus=api.identity_bus,
                                        queue_name=f"documents-{unique}", event_exchange=f"test.{unique}",
                                        label_lease_seconds=0.2, label_sweep_seconds=0.1)

        async def rolled_forward() -> bool:
            return await replica.db["documents"].count_documents(
                {"_id": {"$in": ids}, "share_keys": f"practitioner:{COLLEAGUE}"}) == 3

        await wait_for(rolled_forward, message="the replica rolls the call forward")
        for service in (api, replica):
            await outbox_emptied(service.app.state.infra.relay)
        # every publish was confirmed before its event left the outbox: a sentinel published now is
        # queued behind any duplicate, so once it arrives everything published before it has
        await api.bus.publish(make_event(DocumentShared(document_id="sentinel", owner_id=ME), source="test",
                                         subject="sentinel"))
        await wait_for(lambda: any(e.data["document_id"] == "sentinel" for e in got), message="the sentinel")
        assert sorted(e.data["document_id"] for e in got if e.source == "documents") == sorted(ids)
        assert sorted(await replica.shared_ids(COLLEAGUE)) == sorted(ids)
    finally:
        await delete_broker_objects(amqp_url, queues=[f"count-{unique}"])
