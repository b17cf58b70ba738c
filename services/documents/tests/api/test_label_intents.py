"""A label call is all or nothing even across a crash: its intent is rolled forward once, by one worker,
and each document's events are staged once; a call that never reached its intent is fenced off and its
reservations freed. And every write names the document it staged events in (the relay never has to
sweep for documents' own writes)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from clinishare_documents import service
from clinishare_documents.domain.stored import LabelIntent
from clinishare_documents.store import DOCUMENTS, DocumentStore
from clinishare_shared.events import Envelope
from clinishare_shared.mongo import new_id, now_ms
from clinishare_shared.testing import outbox_emptied, record_kicks, wait_for, yielding

ME, COLLEAGUE = "dr-me", "dr-colleague"
LEASE = timedelta(seconds=30)  # the service's default


async def _crash_after_first_document(api: Any, unique: str) -> tuple[list[str], list[Envelope]]:
    """Three documents, a label call that dies after writing the first; returns their ids and a list that
    collects every ``documents.shared`` delivery from now on."""
    shared: list[Envelope] = []

    async def count(event: Envelope) -> None:
        shared.append(event)

    await api.bus.subscribe(f"count-{unique}", ["documents.shared"], count)
    await api.connect(ME, "practitioner", COLLEAGUE)
    ids = [(await api.upload_ok(ME, bytes([i])))["id"] for i in range(3)]
    await api.label_that_dies_after_one_document(ME, ids, add={"labels": ["x"], "practitioner_ids": [COLLEAGUE]})
    half = {d["_id"]: d for d in await api.db[DOCUMENTS].find({"_id": {"$in": ids}}).to_list()}
    assert half[ids[0]]["labels"] == ["x"]
    assert [half[i]["labels"] for i in ids[1:]] == [[], []]  # half-applied, for now
    return ids, shared


async def _all_applied_once(api: Any, ids: list[str], shared: list[Envelope]) -> None:
    for doc in await api.db[DOCUMENTS].find({"_id": {"$in": ids}}).to_list():
        assert doc["labels"] == ["x"] and doc["share_keys"] == [f"practitioner:{COLLEAGUE}"]
        assert doc.get("label_lock") is None
    assert sorted(await api.shared_ids(COLLEAGUE)) == sorted(ids)
    await api.flush()
    await outbox_emptied(api.app.state.infra.relay)  # a background pass may hold a document meanwhile
    await api.bus.drain()
    assert sorted(e.data["document_id"] for e in shared) == sorted(ids)  # each document's event, once
    assert await api.db["document_label_intents"].count_documents({"done_at": None}) == 0


async def test_a_crash_after_the_first_of_three_documents_is_rolled_forward(api: Any, unique: str) -> None:
    ids, shared = await _crash_after_first_document(api, unique)
    store = api.app.state.store
    # within the lease the call may still be running: nothing is taken over
    assert await service.settle_label_calls(store=store, now=now_ms(), lease=LEASE) == 0
    assert await service.settle_label_calls(store=store, now=now_ms() + LEASE * 1.5, lease=LEASE) == 1
    await _all_applied_once(api, ids, shared)
    # a later sweep finds nothing to do
    assert await service.settle_label_calls(store=store, now=now_ms() + LEASE * 3, lease=LEASE) == 0


async def test_a_restarted_replica_rolls_the_call_forward_at_start(api: Any, start_documents: Any,
                                                                   unique: str) -> None:
    ids, shared = await _crash_after_first_document(api, unique)
    replica = await start_documents(bus=api.bus, label_lease_seconds=0.2, label_sweep_seconds=0.1)

    async def applied() -> bool:
        return await replica.db[DOCUMENTS].count_documents({"_id": {"$in": ids}, "labels": "x"}) == 3

    await wait_for(applied, timeout=10, message="the replica rolls the call forward")
    await replica.app.state.infra.relay.run_once()
    await _all_applied_once(api, ids, shared)


async def test_two_roll_forward_workers_racing_apply_it_once(api: Any, unique: str) -> None:
    ids, shared = await _crash_after_first_document(api, unique)
    kick = api.app.state.infra.kick
    workers = [DocumentStore(yielding(api.db), kick=kick) for _ in range(2)]
    later = now_ms() + LEASE * 1.5
    rolled = await asyncio.gather(*(service.settle_label_calls(store=w, now=later, lease=LEASE) for w in workers))
    assert sorted(rolled) == [0, 1]  # one claim per lease period
    await _all_applied_once(api, ids, shared)


async def test_an_intent_written_twice_stages_each_documents_events_once(api: Any, unique: str) -> None:
    """Even without the claim (a holder stalled past its lease meets its successor), the writes are
    conditional on the intent's own reservation, so racing roll-forwards stage each event once."""
    ids, shared = await _crash_after_first_document(api, unique)
    raw = await api.db["document_label_intents"].find_one({"done_at": None})
    intent = LabelIntent.model_validate(raw)
    kick = api.app.state.infra.kick
    workers = [DocumentStore(yielding(api.db), kick=kick) for _ in range(3)]
    await asyncio.gather(*(service.roll_forward(w, intent) for w in workers))
    await _all_applied_once(api, ids, shared)


async def test_a_call_that_never_reached_its_intent_is_fenced_off(api: Any) -> None:
    await api.connect(ME, "practitioner", COLLEAGUE)
    ids = [(await api.upload_ok(ME, bytes([i])))["id"] for i in range(2)]
    store = api.app.state.store
    call = new_id()
    docs = list((await store.owned(ME, ids)).values())
    assert await store.reserve(docs, call, until=now_ms() + LEASE) is not None
    # reserved: every other write waits, even past the reservation's lease (only the sweeper ends it)
    assert (await api.client.delete(f"/v1/documents/{ids[0]}", headers=api.auth(ME))).status_code == 409
    later = now_ms() + LEASE * 1.5
    await service.settle_label_calls(store=store, now=later, lease=LEASE)
    assert await api.db[DOCUMENTS].count_documents({"_id": {"$in": ids}, "label_lock": None}) == 2
    # the stalled call can no longer commit; it would release what it held and try again
    assert not await store.begin(LabelIntent(id=call, owner_id=ME, created_at=now_ms()))
    ok = await api.label(ME, ids, add={"labels": ["x"], "practitioner_ids": [COLLEAGUE]})
    assert ok.status_code == 200, ok.text
    assert [d["labels"] for d in ok.json()["items"]] == [["x"], ["x"]]
    assert len(await api.flush()) == 2


async def test_a_committed_call_is_not_fenced_off(api: Any, unique: str) -> None:
    """A reservation past its lease whose call did commit is left for the roll-forward, not freed."""
    ids, shared = await _crash_after_first_document(api, unique)
    store = api.app.state.store
    await store.documents.update_many({"_id": {"$in": ids}, "label_lock": {"$ne": None}},
                                      {"$set": {"label_lock.until": now_ms() - LEASE}})
    await service.settle_label_calls(store=store, now=now_ms(), lease=LEASE)  # the intent is young
    assert await api.db[DOCUMENTS].count_documents({"_id": {"$in": ids[1:]}, "label_lock": None}) == 0
    assert await service.settle_label_calls(store=store, now=now_ms() + LEASE * 1.5, lease=LEASE) == 1
    await _all_applied_once(api, ids, shared)


async def test_every_write_names_the_document_it_staged_events_in(start_documents: Any) -> None:
    """The relay's pass after a write reads just the documents named; a store that went back to bare
    kicks (a full sweep of every collection) fails here."""
    api = await start_documents(expiry_sweep_seconds=0.1)
    kicks = record_kicks(api.app.state.infra.relay)
    await api.connect(ME, "practitioner", COLLEAGUE)
    doc = await api.upload_ok(ME)
    soon = (now_ms() + timedelta(seconds=0.5)).isoformat()
    assert (await api.label(ME, [doc["id"]], add={"practitioner_ids": [COLLEAGUE], "expires_at": soon})).status_code == 200
    assert (await api.client.get(f"/v1/documents/{doc['id']}/content", headers=api.auth(COLLEAGUE))).status_code == 200
    await wait_for(lambda: api.documents_events(("documents.share.expired",)), timeout=10)
    assert (await api.client.delete(f"/v1/documents/{doc['id']}", headers=api.auth(ME))).status_code == 204
    named = {c for c, _ in kicks}
    assert named == {"documents", "document_accesses", "document_share_expiries"}, kicks
    assert all(c is not None and d is not None for c, d in kicks), kicks
    assert [d for c, d in kicks if c == "documents"] == [doc["id"]] * 3  # upload, label, delete
