"""The lookups behind the hot reads (``chart_reach``, ``chart_index``) are candidate lists only: whatever
they name is loaded by ``_id`` and the access rule re-checked on it, so a tampered or stale lookup gives
nobody anything the rule does not. Their write order (add before writing, remove after revoking) leaves a
superset when a process dies between the two writes, never a missing entry; each crash is simulated here
by failing the second write."""

from __future__ import annotations

from typing import Any

import pytest

from clinishare_charts import service
from clinishare_charts.store import (
    LOOKUPS_BUILT, REACH_CHUNK, ChartStore, ChunkedSets, author_key, entry_text, parse_entry, patient_key, reach_entry, reach_key,
)
from clinishare_shared.mongo import new_id


class Crash(Exception):
    """The process dying between two writes."""


class _Failing:
    """A collection whose ``method`` fails (the crash) while everything else goes through."""

    def __init__(self, coll: Any, method: str) -> None:
        self._coll, self._method = coll, method

    def __getattr__(self, name: str) -> Any:
        if name == self._method:
            async def crash(*args: Any, **kwargs: Any) -> Any:
                raise Crash(name)
            return crash
        return getattr(self._coll, name)


def store_of(charts: Any) -> ChartStore:
    return charts.app.state.store


async def grant_ids_listed(store: ChartStore, key: str) -> list[str]:
    return [parse_entry(e)["g"] for e in (await store.reach_sets.members([key])).get(key, [])]


async def shared_chart_setup(charts: Any) -> tuple[str, dict[str, Any]]:
    """B on A's sharing list (a PIN connection), A's patient Ada and one chart of hers: (patient, chart)."""
    await charts.identity.connect("dr-a", "dr-b")
    pid = await charts.identity.patient("Ada", "dr-a")
    return pid, await charts.chart("dr-a", pid)


async def test_a_crash_between_listing_a_grant_and_writing_it_gives_nothing(charts: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pid, chart = await shared_chart_setup(charts)
    store = store_of(charts)
    monkeypatch.setattr(store, "grants", _Failing(store.grants, "insert_one"))
    with pytest.raises(Crash):
        await service.stage_grant(store=store, owner_id="dr-a", rule="all", chart_id=None, patient_id=None,
                                  practitioner_ids=["dr-b"], office_ids=[])
    monkeypatch.undo()
    assert len(await grant_ids_listed(store, reach_key("p", "dr-b"))) == 1  # listed, never written
    assert await charts.shared_ids("dr-b") == []
    assert await charts.status("dr-b", chart["id"]) == 404
    # the next share is unaffected by the leftover entry
    await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-b"])
    assert await charts.shared_ids("dr-b") == [chart["id"]]
    assert await charts.status("dr-b", chart["id"]) == 200


async def test_a_crash_between_revoking_and_unlisting_still_refuses(charts: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pid, chart = await shared_chart_setup(charts)
    grant = await charts.share("dr-a", "patient", patient_id=pid, practitioner_ids=["dr-b"])
    assert await charts.status("dr-b", chart["id"]) == 200
    store = store_of(charts)
    monkeypatch.setattr(store.reach_sets, "coll", _Failing(store.reach, "update_one"))
    with pytest.raises(Crash):
        await service.revoke_grant(store=store, grant_id=grant["id"], owner_id="dr-a")
    monkeypatch.undo()
    assert await grant_ids_listed(store, reach_key("p", "dr-b")) == [grant["id"]]  # revoked, still listed
    assert await charts.shared_ids("dr-b") == []
    assert await charts.status("dr-b", chart["id"]) == 404
    # revoking again changes nothing on the grant and clears the leftover entry
    r = await charts.http.delete(f"/v1/chart-shares/{grant['id']}", headers=charts.auth("dr-a"))
    assert r.status_code == 204
    assert await grant_ids_listed(store, reach_key("p", "dr-b")) == []


async def test_a_crash_between_listing_a_chart_or_note_and_writing_it_shows_nothing(
        charts: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    idp = charts.identity
    await idp.connect("dr-a", "dr-b")
    pid = await idp.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid, title="kept")
    await charts.share("dr-a", "all", practitioner_ids=["dr-b"])
    store = store_of(charts)
    monkeypatch.setattr(store, "charts", _Failing(store.charts, "insert_one"))
    with pytest.raises(Crash):
        await service.stage_chart(store=store, author_id="dr-a", patient_id="p-new", patient_name="N", title="lost",
                                  body="")
    monkeypatch.setattr(store, "notes", _Failing(store.notes, "insert_one"))
    with pytest.raises(Crash):
        await service.add_note(store=store, chart=await store.chart(chart["id"]), author_id="dr-b", text="lost")
    monkeypatch.undo()
    assert len((await store.index.find_one({"_id": author_key("dr-a")}))["ids"]) == 2  # one never written
    assert await charts.shared_ids("dr-b") == [chart["id"]]
    own = await charts.http.get("/v1/charts", headers=charts.auth("dr-a"))
    assert [c["id"] for c in own.json()["items"]] == [chart["id"]]
    read = await charts.http.get(f"/v1/charts/{chart['id']}", headers=charts.auth("dr-b"))
    assert read.status_code == 200 and read.json()["notes"] == []
    # "a patient of yours" is not inferred from a chart that was never written
    assert not await store.has_charts_for("dr-a", "p-new")
    await charts.share("dr-a", "patient", expect=422, patient_id="p-new", practitioner_ids=["dr-b"])


async def _tamper(store: ChartStore, key: str, entry: dict[str, Any]) -> None:
    await store.reach.update_one({"_id": key}, {"$addToSet": {"grants": entry_text(**entry)}}, upsert=True)


async def test_a_lookup_naming_the_wrong_recipient_gives_them_nothing(charts: Any) -> None:
    """Entries put where they do not belong (another practitioner's lookup, an office the grant does not
    name, a rule wider than the grant's) change nothing: the loaded grant decides."""
    idp = charts.identity
    await idp.connect("dr-a", "dr-b")
    await idp.connect("dr-a", "dr-c")
    office = await idp.office("dr-a", {"dr-c": "practitioner"})
    pid = await idp.patient("Ada", "dr-a")
    shared = await charts.chart("dr-a", pid, title="shared")
    other = await charts.chart("dr-a", pid, title="not shared")
    grant = await charts.share("dr-a", "chart", chart_id=shared["id"], practitioner_ids=["dr-b"])
    store = store_of(charts)
    doc = await store.grants.find_one({"_id": grant["id"]})
    entry = parse_entry(reach_entry(doc))
    await _tamper(store, reach_key("p", "dr-c"), entry)  # wrong practitioner
    await _tamper(store, reach_key("o", office), entry)  # an office the grant does not name (C is a member)
    assert await charts.shared_ids("dr-c") == []
    assert await charts.status("dr-c", shared["id"]) == 404
    # an entry claiming the grant covers all of A's charts: B still reads only the chart granted
    await _tamper(store, reach_key("p", "dr-b"), {**entry, "r": "all", "t": None})
    assert await charts.shared_ids("dr-b") == [shared["id"]]
    assert await charts.status("dr-b", other["id"]) == 404
    # an entry naming a grant id that does not exist
    await _tamper(store, reach_key("p", "dr-c"), {**entry, "g": new_id(), "r": "all", "t": None})
    assert await charts.shared_ids("dr-c") == []
    assert await charts.status("dr-c", other["id"]) == 404


async def test_an_office_lookup_is_re_checked_against_membership_now(charts: Any) -> None:
    """The office's lookup keeps listing the grant; a member who left, or a staff member, reads nothing."""
    idp = charts.identity
    office = await idp.office("dr-a", {"dr-b": "practitioner", "st-s": "staff"})
    pid = await idp.patient("Ada", "dr-a")
    chart = await charts.chart("dr-a", pid)
    grant = await charts.share("dr-a", "all", office_ids=[office])
    store = store_of(charts)
    assert await charts.shared_ids("dr-b") == [chart["id"]]
    assert await charts.shared_ids("st-s", kind="staff") == []
    assert await charts.status("st-s", chart["id"], kind="staff") == 404
    await idp.leave(office, "dr-b")
    assert await grant_ids_listed(store, reach_key("o", office)) == [grant["id"]]
    assert await charts.shared_ids("dr-b") == []
    assert await charts.status("dr-b", chart["id"]) == 404
    # revoking takes the grant out of the office's lookup
    r = await charts.http.delete(f"/v1/chart-shares/{grant['id']}", headers=charts.auth("dr-a"))
    assert r.status_code == 204
    assert await grant_ids_listed(store, reach_key("o", office)) == []


async def test_lookups_are_built_for_data_written_before_them(charts: Any) -> None:
    """A database from before the lookups (documents only, no lookup, no marker) is listed in full by
    ``ensure_lookups`` at start-up; revoked grants are not listed."""
    idp = charts.identity
    await idp.connect("dr-a", "dr-b")
    pid = await idp.patient("Ada", "dr-a")
    first = await charts.chart("dr-a", pid, title="first")
    await charts.http.post(f"/v1/charts/{first['id']}/notes", json={"text": "seen"}, headers=charts.auth("dr-a"))
    second = await charts.chart("dr-a", pid, title="second")
    await charts.share("dr-a", "patient", patient_id=pid, practitioner_ids=["dr-b"])
    revoked = await charts.share("dr-a", "all", practitioner_ids=["dr-b"])
    await charts.http.delete(f"/v1/chart-shares/{revoked['id']}", headers=charts.auth("dr-a"))
    store = store_of(charts)
    await store.reach.delete_many({})
    await store.index.delete_many({})
    assert await charts.shared_ids("dr-b") == []  # nothing listed: nothing found (the lookups are the way in)
    await store.ensure_lookups()
    assert await grant_ids_listed(store, reach_key("p", "dr-b")) != []
    assert revoked["id"] not in await grant_ids_listed(store, reach_key("p", "dr-b"))
    assert await charts.shared_ids("dr-b") == [second["id"], first["id"]]
    read = (await charts.http.get(f"/v1/charts/{first['id']}", headers=charts.auth("dr-b"))).json()
    assert [n["text"] for n in read["notes"]] == ["seen"]
    assert await store.index.find_one({"_id": LOOKUPS_BUILT}) is not None
    # built once: a later start does not scan again
    await store.index.delete_many({"_id": {"$ne": LOOKUPS_BUILT}})
    await store.ensure_lookups()
    assert await store.index.count_documents({}) == 1


async def test_rebuild_lookups_lists_what_a_release_without_lookups_wrote_after_they_were_built(
        charts: Any) -> None:
    """During an upgrade from a release that wrote no lookups, its replicas keep writing after the new
    ones built the lookups (the marker is set): a grant and a chart of theirs reach nobody until
    ``python -m clinishare_charts rebuild-lookups`` runs; then they do, and nothing else changes."""
    from clinishare_charts.__main__ import rebuild_lookups

    pid, chart = await shared_chart_setup(charts)
    store = store_of(charts)
    assert await store.index.find_one({"_id": LOOKUPS_BUILT}) is not None
    # what an old replica writes: the documents alone
    old_chart = {**(await store.chart(chart["id"])), "_id": new_id(), "title": "written by the old release"}
    await store.charts.insert_one(old_chart)
    grant = await service.stage_grant(store=store, owner_id="dr-a", rule="patient", chart_id=None, patient_id=pid,
                                      practitioner_ids=["dr-b"], office_ids=[])
    await store.reach.delete_many({})  # as if the grant had been written without its entry
    await store.index.delete_many({"_id": author_key("dr-a")})
    await store.index.delete_many({"_id": patient_key("dr-a", pid)})
    assert await charts.shared_ids("dr-b") == []
    done = await rebuild_lookups(store.db)
    assert done["chart_lookups"] >= 3 and "projection_lookups" in done
    assert grant["_id"] in await grant_ids_listed(store, reach_key("p", "dr-b"))
    assert await charts.shared_ids("dr-b") == [old_chart["_id"], chart["id"]]
    assert await charts.shared_ids("dr-c") == []  # nobody else gains anything
    assert await rebuild_lookups(store.db) == done  # again: the same sets, nothing added


async def test_paging_through_the_lookups_keeps_newest_first(charts: Any) -> None:
    """Several sharers, every rule: pages of two follow the cursor over exactly the charts shared, newest
    first, each once."""
    idp = charts.identity
    for sharer in ("dr-a", "dr-c"):
        await idp.connect(sharer, "dr-b")
    pa = await idp.patient("Ada", "dr-a")
    pb = await idp.patient("Bo", "dr-a")
    pc = await idp.patient("Cy", "dr-c")
    made = []
    for author, pid in (("dr-a", pa), ("dr-c", pc), ("dr-a", pb), ("dr-a", pa), ("dr-c", pc), ("dr-a", pb)):
        made.append((await charts.chart(author, pid))["id"])
    await charts.chart("dr-b", await idp.patient("Own", "dr-b"))  # B's own chart is not "shared with" B
    await charts.share("dr-a", "patient", patient_id=pa, practitioner_ids=["dr-b"])
    await charts.share("dr-a", "chart", chart_id=made[2], practitioner_ids=["dr-b"])
    await charts.share("dr-c", "all", practitioner_ids=["dr-b"])
    expected = [made[i] for i in (4, 3, 2, 1, 0)]  # not made[5]: B's patient-Bo chart that was not granted
    assert await charts.walk("/v1/charts/shared-with-me", "dr-b", limit=2) == expected
    assert await charts.shared_ids("dr-b", limit=100) == expected



async def test_a_chart_lookup_naming_charts_not_covered_lists_nothing_more(charts: Any) -> None:
    """Chart ids put in a lookup they do not belong to (another patient's chart, another author's) are
    loaded and dropped: a listing shows only what a grant covers, "Your Charts" only the caller's."""
    idp = charts.identity
    await idp.connect("dr-a", "dr-b")
    pa = await idp.patient("Ada", "dr-a")
    pb = await idp.patient("Bo", "dr-a")
    px = await idp.patient("Xi", "dr-x")
    covered = await charts.chart("dr-a", pa)
    other_patient = await charts.chart("dr-a", pb)
    other_author = await charts.chart("dr-x", px)
    await charts.share("dr-a", "patient", patient_id=pa, practitioner_ids=["dr-b"])
    store = store_of(charts)
    for key in (patient_key("dr-a", pa), author_key("dr-a")):
        await store.index.update_one({"_id": key}, {"$addToSet": {"ids": {"$each": [other_patient["id"],
                                                                                     other_author["id"]]}}})
    assert await charts.shared_ids("dr-b") == [covered["id"]]
    own = (await charts.http.get("/v1/charts", headers=charts.auth("dr-a"))).json()
    assert [c["id"] for c in own["items"]] == [other_patient["id"], covered["id"]]


async def test_lookup_entries_are_strings_and_those_written_as_documents_still_count(charts: Any) -> None:
    """Entries are stored as one string each (cheap for FerretDB to decode in a long lookup); an entry
    written as a sub-document by earlier code is still read, and a revoke still takes it out."""
    pid, chart = await shared_chart_setup(charts)
    grant = await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-b"])
    store = store_of(charts)
    key = reach_key("p", "dr-b")
    doc = await store.reach.find_one({"_id": key})
    assert doc["grants"] == [f"{grant['id']}|dr-a|chart|{chart['id']}"]
    # as earlier code wrote it
    await store.reach.update_one({"_id": key}, {"$set": {"grants": [parse_entry(doc["grants"][0])]}})
    assert await charts.shared_ids("dr-b") == [chart["id"]]
    assert await charts.status("dr-b", chart["id"]) == 200
    r = await charts.http.delete(f"/v1/chart-shares/{grant['id']}", headers=charts.auth("dr-a"))
    assert r.status_code == 204
    assert await grant_ids_listed(store, key) == []
    assert await charts.shared_ids("dr-b") == []


async def test_chunked_sets_keep_every_value_in_bounded_documents(mongo_client: Any, db_name: str) -> None:
    """Values spread over documents of at most ``chunk`` (a lone writer never overfills one); adding again
    changes nothing; removing finds a value in whichever document holds it; a chunk announced but never
    filled (a crash between the two writes) reads as empty."""
    coll = mongo_client[db_name]["sets"]
    sets = ChunkedSets(coll, "v", chunk=3)
    await sets.add("k", *[f"x{i}" for i in range(7)])
    await sets.add("k", "x8")
    await sets.add("k", "x0")  # already there
    docs = await coll.find({}).to_list()
    assert {d["_id"] for d in docs} == {"k", "k#1", "k#2"} and all(len(d["v"]) <= 3 for d in docs)
    assert sorted((await sets.members(["k", "other"]))["k"]) == sorted([f"x{i}" for i in range(7)] + ["x8"])
    await sets.remove("k", "x1", "x6")
    assert sorted((await sets.members(["k"]))["k"]) == ["x0", "x2", "x3", "x4", "x5", "x8"]
    await coll.update_one({"_id": "k"}, {"$max": {"more": 3}})  # announced, then the process died
    assert len((await sets.members(["k"]))["k"]) == 6
    await sets.add("k", "x9")
    assert "x9" in (await sets.members(["k"]))["k"]
    # another process, which does not know the first document is full: one more value there, then on
    elsewhere = ChunkedSets(coll, "v", chunk=3)
    await elsewhere.add("k", "y0")
    await elsewhere.add("k", "y1")
    assert "y0" in (await coll.find_one({"_id": "k"}))["v"] and "y1" in (await coll.find_one({"_id": "k#3"}))["v"]
    assert {"x9", "y0", "y1"} <= set((await sets.members(["k"]))["k"])
    assert len((await sets.members(["k"]))["k"]) == 9


async def test_a_busy_recipient_s_lookup_spans_chunks(charts: Any) -> None:
    """More grants than one lookup document holds: every one still reaches, each document stays bounded,
    and a revoke finds its entry in whichever document holds it."""
    pid, chart = await shared_chart_setup(charts)
    store = store_of(charts)
    grants = [await service.stage_grant(store=store, owner_id="dr-a", rule="chart", chart_id=chart["id"],
                                        patient_id=pid, practitioner_ids=["dr-b"], office_ids=[])
              for _ in range(REACH_CHUNK + 6)]
    key = reach_key("p", "dr-b")
    docs = await store.reach.find({"_id": {"$in": [key, f"{key}#1", f"{key}#2"]}}).to_list()
    assert sorted(d["_id"] for d in docs) == [key, f"{key}#1"] and all(len(d["grants"]) <= REACH_CHUNK for d in docs)
    assert len(await grant_ids_listed(store, key)) == REACH_CHUNK + 6
    assert await charts.shared_ids("dr-b") == [chart["id"]]
    for g in grants[:-1]:
        await service.revoke_grant(store=store, grant_id=g["_id"], owner_id="dr-a")
    assert await grant_ids_listed(store, key) == [grants[-1]["_id"]]  # the last one sits in key#1
    assert await charts.status("dr-b", chart["id"]) == 200
    await service.revoke_grant(store=store, grant_id=grants[-1]["_id"], owner_id="dr-a")
    assert await charts.status("dr-b", chart["id"]) == 404
