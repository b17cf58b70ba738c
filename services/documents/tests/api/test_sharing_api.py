"""Labels and share labels, lists (mine / shared / portal), office audiences, over HTTP."""

from __future__ import annotations

from typing import Any

from clinishare_shared.testing import outbox_emptied

ME, COLLEAGUE, STRANGER, STAFF = "dr-me", "dr-colleague", "dr-stranger", "staff-1"


async def test_ordinary_labels_file_documents_and_announce_nothing(api: Any) -> None:
    a = await api.upload_ok(ME, b"a")
    b = await api.upload_ok(ME, b"b")
    resp = await api.label(ME, [a["id"], b["id"]], add={"labels": ["Cardiology", " x-ray "]})
    assert resp.status_code == 200
    assert [d["labels"] for d in resp.json()["items"]] == [["Cardiology", "x-ray"]] * 2
    await api.label(ME, [b["id"]], remove={"labels": ["x-ray"]})
    listed = await api.client.get("/v1/documents", params={"label": "x-ray"}, headers=api.auth(ME))
    assert [d["id"] for d in listed.json()["items"]] == [a["id"]]
    assert await api.flush() == []


async def test_sharing_events_carry_only_what_was_added_or_removed(api: Any) -> None:
    office = await api.office(ME, **{COLLEAGUE: "practitioner"})
    patient = await api.patient(ME)
    doc = await api.upload_ok(ME, b"x", filename="secret-name.pdf")
    await api.label(ME, [doc["id"]], add={"practitioner_ids": [COLLEAGUE]})
    resp = await api.label(ME, [doc["id"]], add={"practitioner_ids": [COLLEAGUE], "patient_ids": [patient],
                                                 "offices": [{"office_id": office, "audience": "staff"}]})
    shares = resp.json()["items"][0]["shares"]
    assert shares == {"patient_ids": [patient], "practitioner_ids": [COLLEAGUE],
                      "offices": [{"office_id": office, "audience": "staff"}]}
    events = await api.flush()
    assert [e.type for e in events] == ["documents.shared", "documents.shared"]
    assert events[0].data["practitioner_ids"] == [COLLEAGUE]
    second = events[1].data
    assert second["practitioner_ids"] == [] and second["patient_ids"] == [patient]  # not re-announced
    assert second["offices"] == [{"office_id": office, "audience": "staff"}]
    assert set(second) == {"document_id", "owner_id", "workspace_patient_id", "patient_ids", "practitioner_ids",
                           "offices", "expires_at"}
    assert all("secret-name" not in e.model_dump_json() for e in events)


async def test_unlabel_removes_access_at_once(api: Any) -> None:
    await api.connect(ME, "practitioner", COLLEAGUE)
    doc = await api.upload_ok(ME, b"x")
    await api.label(ME, [doc["id"]], add={"practitioner_ids": [COLLEAGUE]})
    assert await api.shared_ids(COLLEAGUE) == [doc["id"]]
    seen = await api.client.get(f"/v1/documents/{doc['id']}", headers=api.auth(COLLEAGUE))
    assert seen.status_code == 200
    assert seen.json()["shares"] == {"patient_ids": [], "practitioner_ids": [], "offices": []}  # not who else
    resp = await api.label(ME, [doc["id"]], remove={"practitioner_ids": [COLLEAGUE]})
    assert resp.json()["items"][0]["shares"]["practitioner_ids"] == []
    assert await api.shared_ids(COLLEAGUE) == []
    assert (await api.client.get(f"/v1/documents/{doc['id']}", headers=api.auth(COLLEAGUE))).status_code == 404
    events = await api.flush()
    assert [e.type for e in events] == ["documents.shared", "documents.unshared"]
    assert events[1].data["practitioner_ids"] == [COLLEAGUE]


async def test_mixed_bulk_call_changes_nothing(api: Any) -> None:
    await api.connect(ME, "practitioner", COLLEAGUE)
    mine_patient, other_patient = await api.patient(ME), await api.patient(ME)
    all_docs = await api.upload_ok(ME, b"a")
    workspace = await api.upload_ok(ME, b"w", patient_id=mine_patient)
    theirs = await api.upload_ok(STRANGER, b"t")
    await outbox_emptied(api.app.state.infra.relay)  # else the relay's removal of the uploads' events differs
    before = await api.db["documents"].find({}).sort("_id", 1).to_list()

    resp = await api.label(ME, [all_docs["id"], workspace["id"], theirs["id"]],
                           add={"labels": ["ok"], "practitioner_ids": [COLLEAGUE, STRANGER],
                                "patient_ids": [other_patient],
                                "offices": [{"office_id": "office-nowhere", "audience": "everyone"}]})
    assert resp.status_code == 422
    errors = {(e["target"], e.get("document_id")) for e in resp.json()["errors"]}
    assert errors == {
        (f"document:{theirs['id']}", theirs["id"]),
        (f"patient:{other_patient}", workspace["id"]),  # a workspace document: its own patient only
        (f"practitioner:{STRANGER}", None),
        ("office:office-nowhere", None),
    }
    assert await api.db["documents"].find({}).sort("_id", 1).to_list() == before
    assert await api.flush() == [] and await api.app.state.infra.relay.pending() == 0

    # the same call without the bad targets goes through, for every document
    ok = await api.label(ME, [all_docs["id"], workspace["id"]],
                         add={"labels": ["ok"], "practitioner_ids": [COLLEAGUE], "patient_ids": [mine_patient]})
    assert ok.status_code == 200
    assert [len(e.data["practitioner_ids"]) for e in await api.flush()] == [1, 1]


async def test_patient_share_needs_the_patient_in_my_care(api: Any) -> None:
    not_mine = await api.patient(COLLEAGUE)
    doc = await api.upload_ok(ME, b"a")
    resp = await api.label(ME, [doc["id"]], add={"patient_ids": [not_mine]})
    assert resp.status_code == 422 and resp.json()["invalid_ids"] == [not_mine]


async def test_office_audience_staff_versus_practitioners(api: Any) -> None:
    office = await api.office(ME, **{COLLEAGUE: "practitioner", STAFF: "staff"})
    for_staff = await api.upload_ok(ME, b"s")
    for_practitioners = await api.upload_ok(ME, b"p")
    await api.label(ME, [for_staff["id"]], add={"offices": [{"office_id": office, "audience": "staff"}]})
    await api.label(ME, [for_practitioners["id"]],
                    add={"offices": [{"office_id": office, "audience": "practitioners"}]})

    assert await api.shared_ids(STAFF, "staff") == [for_staff["id"]]
    assert await api.shared_ids(COLLEAGUE) == [for_practitioners["id"]]
    for who, kind, doc, status in [(STAFF, "staff", for_staff, 200), (STAFF, "staff", for_practitioners, 404),
                                   (COLLEAGUE, "practitioner", for_practitioners, 200),
                                   (COLLEAGUE, "practitioner", for_staff, 404)]:
        for path in (f"/v1/documents/{doc['id']}", f"/v1/documents/{doc['id']}/content"):
            assert (await api.client.get(path, headers=api.auth(who, kind))).status_code == status


async def test_removed_office_member_loses_access_and_a_new_one_gains_it(api: Any) -> None:
    office = await api.office(ME, **{STAFF: "staff"})
    doc = await api.upload_ok(ME, b"x")
    await api.label(ME, [doc["id"]], add={"offices": [{"office_id": office, "audience": "staff"}]})
    assert await api.shared_ids(STAFF, "staff") == [doc["id"]]
    await api.remove_member(office, STAFF)
    assert await api.shared_ids(STAFF, "staff") == []
    assert (await api.client.get(f"/v1/documents/{doc['id']}", headers=api.auth(STAFF, "staff"))).status_code == 404
    await api.add_member(office, "staff-2", "staff")
    assert await api.shared_ids("staff-2", "staff") == [doc["id"]]


async def test_portal_lists_documents_shared_with_the_patient(api: Any) -> None:
    patient, other = await api.patient(ME), await api.patient(ME)
    shared = await api.upload_ok(ME, b"for you", patient_id=patient)
    await api.upload_ok(ME, b"not shared", patient_id=patient)
    assert (await api.label(ME, [shared["id"]], add={"patient_ids": [patient]})).status_code == 200

    portal = await api.client.get("/v1/portal/documents", headers=api.auth(patient, "patient"))
    assert portal.status_code == 200
    assert [d["id"] for d in portal.json()["items"]] == [shared["id"]]
    content = await api.client.get(f"/v1/documents/{shared['id']}/content", headers=api.auth(patient, "patient"))
    assert content.content == b"for you"
    assert (await api.client.get("/v1/portal/documents", headers=api.auth(other, "patient"))).json()["items"] == []
    assert (await api.client.get(f"/v1/documents/{shared['id']}",
                                 headers=api.auth(other, "patient"))).status_code == 404
    assert (await api.client.get("/v1/portal/documents", headers=api.auth(ME))).status_code == 403
    # a recipient patient sees it but may not delete it
    assert (await api.client.delete(f"/v1/documents/{shared['id']}",
                                    headers=api.auth(patient, "patient"))).status_code == 403


async def test_lists_are_paginated_newest_first(api: Any) -> None:
    await api.connect(ME, "practitioner", COLLEAGUE)
    ids = [(await api.upload_ok(ME, bytes([i]) + b"x"))["id"] for i in range(3)]
    await api.label(ME, ids, add={"practitioner_ids": [COLLEAGUE]})
    for who, scope in ((ME, "mine"), (COLLEAGUE, "shared")):
        seen, cursor = [], None
        while True:
            params = {"scope": scope, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await api.client.get("/v1/documents", params=params, headers=api.auth(who))).json()
            seen += [d["id"] for d in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert seen == ids[::-1]
    bad = await api.client.get("/v1/documents", params={"scope": "shared", "label": "x"}, headers=api.auth(COLLEAGUE))
    assert bad.status_code == 422
    patient = await api.client.get("/v1/documents", headers=api.auth("p", "patient"))
    assert patient.status_code == 403


async def test_listing_queries_have_their_indexes(api: Any) -> None:
    # "shared with me" is an $in over the reader's keys, sorted by _id: this index serves it whatever
    # the number of documents (the in-process engine has no query planner to ask).
    keys = {name: spec["key"] for name, spec in (await api.db["documents"].index_information()).items()}
    assert keys["shared"] == [("share_keys", 1), ("deleted_at", 1), ("_id", -1)]
    assert keys["mine"] == [("owner_id", 1), ("deleted_at", 1), ("_id", -1)]
    assert keys["mine_by_label"] == [("owner_id", 1), ("deleted_at", 1), ("labels", 1), ("_id", -1)]


async def test_identity_breaks_ties_when_the_projection_lags(start_documents: Any) -> None:
    from clinishare_shared.domain.sharing import SharingList

    class Identity:  # identity already knows what the projection has not heard yet
        async def patient(self, patient_id: str, *, authorization: str) -> dict[str, Any] | None:
            return {"id": patient_id} if patient_id == "new-patient" else None

        async def sharing_list(self, *, authorization: str) -> SharingList | None:
            return SharingList(practitioners={"new-colleague": "pin"})

    api = await start_documents(directory=Identity())
    doc = await api.upload_ok(ME, b"x", patient_id="new-patient")
    ok = await api.label(ME, [doc["id"]], add={"patient_ids": ["new-patient"], "practitioner_ids": ["new-colleague"]})
    assert ok.status_code == 200, ok.text
    refused = await api.label(ME, [doc["id"]], add={"practitioner_ids": [STRANGER]})
    assert refused.status_code == 422 and refused.json()["invalid_ids"] == [STRANGER]
    assert (await api.upload(ME, b"x", patient_id="unknown-patient")).status_code == 422


class _LastDocumentKeepsChanging:
    """The documents collection with someone else changing ``doc_id`` just before every attempt of a
    label call to write it with a version check (``times`` attempts, then it stops)."""

    def __init__(self, coll: Any, doc_id: str, times: int) -> None:
        self._c, self.doc_id, self.times = coll, doc_id, times

    async def update_one(self, query: dict[str, Any], update: dict[str, Any], **kw: Any) -> Any:
        if query.get("_id") == self.doc_id and "version" in query and self.times:
            self.times -= 1
            await self._c.update_one({"_id": self.doc_id}, {"$inc": {"version": 1}})
        return await self._c.update_one(query, update, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)


async def test_a_call_whose_last_document_conflicts_changes_nothing(api: Any) -> None:
    await api.connect(ME, "practitioner", COLLEAGUE)
    docs = [await api.upload_ok(ME, bytes([i])) for i in range(3)]
    store = api.app.state.store
    store.documents = _LastDocumentKeepsChanging(store.documents, docs[-1]["id"], times=100)
    resp = await api.label(ME, [d["id"] for d in docs], add={"labels": ["x"], "practitioner_ids": [COLLEAGUE]})
    assert resp.status_code == 409, resp.text
    for d in docs:
        stored = await api.db["documents"].find_one({"_id": d["id"]})
        assert stored["labels"] == [] and stored["share_keys"] == [] and stored.get("label_lock") is None
    assert await api.shared_ids(COLLEAGUE) == []
    assert await api.flush() == []


async def test_a_call_whose_last_document_conflicts_once_is_applied_whole(api: Any) -> None:
    await api.connect(ME, "practitioner", COLLEAGUE)
    docs = [await api.upload_ok(ME, bytes([i])) for i in range(3)]
    store = api.app.state.store
    store.documents = _LastDocumentKeepsChanging(store.documents, docs[-1]["id"], times=1)
    resp = await api.label(ME, [d["id"] for d in docs], add={"practitioner_ids": [COLLEAGUE]})
    assert resp.status_code == 200, resp.text
    assert sorted(await api.shared_ids(COLLEAGUE)) == sorted(d["id"] for d in docs)
    assert sorted(e.data["document_id"] for e in await api.flush()) == sorted(d["id"] for d in docs)


async def test_a_document_deleted_during_a_call_refuses_the_call(api: Any) -> None:
    docs = [await api.upload_ok(ME, bytes([i])) for i in range(2)]
    store = api.app.state.store

    class _DeletedMeanwhile(_LastDocumentKeepsChanging):
        async def update_one(self, query: dict[str, Any], update: dict[str, Any], **kw: Any) -> Any:
            if query.get("_id") == self.doc_id and "version" in query:
                await self._c.update_one({"_id": self.doc_id}, {"$set": {"deleted_at": "now"}})
            return await self._c.update_one(query, update, **kw)

    store.documents = _DeletedMeanwhile(store.documents, docs[-1]["id"], times=1)
    resp = await api.label(ME, [d["id"] for d in docs], add={"labels": ["x"]})
    assert resp.status_code == 422, resp.text
    assert resp.json()["invalid_ids"] == [docs[-1]["id"]]
    assert (await api.db["documents"].find_one({"_id": docs[0]["id"]}))["labels"] == []
