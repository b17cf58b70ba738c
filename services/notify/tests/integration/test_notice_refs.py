"""The notice lookup (``notice_refs``): which notices told of a grant or a document, by ``_id``, so a
revoke or an unshare finds them without scanning every notification. Written before each notice, so a
crash between leaves an id that names nothing (ignored), never a notice the lookup misses."""

from __future__ import annotations

from typing import Any

from clinishare_shared.events import ChartShareGranted, ChartShareRevoked, DocumentShared, DocumentUnshared


def _grant(grant_id: str, to: list[str]) -> ChartShareGranted:
    return ChartShareGranted(grant_id=grant_id, owner_id="alice", rule="all", practitioner_ids=to, office_ids=[])


async def test_a_revoke_finds_the_grant_s_notices_through_the_lookup_and_tells_only_them(start_notify: Any,
                                                                                          smtp: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()  # the e-mails stay pending until the revoke cancels them
    for r in ("bob", "carol", "dave"):
        await svc.account(r, name=f"Dr {r}", email=f"{r}@clinic.test")
    g1 = await svc.publish(_grant("g1", ["bob", "carol"]), source="charts")
    await svc.publish(_grant("g2", ["dave"]), source="charts")
    lookup = await svc.db["notice_refs"].find_one({"_id": "grant:g1"})
    assert sorted(lookup["ids"]) == [f"{g1.id}:bob", f"{g1.id}:carol"]
    assert await svc.store.told_about(grant_id="g1") == {"bob", "carol"}
    await svc.publish(ChartShareRevoked(**_grant("g1", ["bob", "carol"]).model_dump()), source="charts")
    notes = {(n["recipient_id"], n["type"]): n for n in await svc.notifications()}
    for r in ("bob", "carol"):
        granted = notes[(r, "charts.share.granted")]
        assert granted["read"] is True and granted["withdrawn"] is True
        assert granted["email"]["status"] == "skipped" and granted["email"]["reason"] == "withdrawn"
        assert (r, "charts.share.revoked") in notes  # told it ended
    dave = notes[("dave", "charts.share.granted")]  # another grant: untouched
    assert dave["read"] is False and dave["email"]["status"] == "pending"
    assert await svc.worker.run_once() == 3 and len(smtp.messages) == 3  # dave's share, bob's and carol's ends
    assert ("dave", "charts.share.revoked") not in notes


async def test_an_id_whose_notice_was_never_written_is_ignored(start_notify: Any) -> None:
    """A crash between the lookup's write and the notice's insert: the id names nothing."""
    svc = await start_notify()
    await svc.db["notice_refs"].update_one({"_id": "grant:g1"}, {"$addToSet": {"ids": "lost-event:bob"}}, upsert=True)
    g1 = await svc.publish(_grant("g1", ["carol"]), source="charts")
    assert await svc.store.told_about(grant_id="g1") == {"carol"}
    assert await svc.store.withdraw_grant("g1") == 1
    assert (await svc.store.get(f"{g1.id}:carol", "carol"))["withdrawn"] is True


async def test_an_unshare_finds_the_document_s_notices_through_the_lookup(start_notify: Any) -> None:
    svc = await start_notify()
    await svc.publish(DocumentShared(document_id="d1", owner_id="alice", practitioner_ids=["bob", "carol"]),
                      source="documents")
    assert await svc.store.told_about(document_id="d1") == {"bob", "carol"}
    assert await svc.store.told_about(document_id="d2") == set()
    await svc.publish(DocumentUnshared(document_id="d1", owner_id="alice", practitioner_ids=["bob"]),
                      source="documents")
    ended = [n["recipient_id"] for n in await svc.notifications(type="documents.unshared")]
    assert ended == ["bob"]  # the unshared recipient who was told of the share hears it ended


async def test_notices_written_before_the_lookup_existed_are_indexed_once_at_start(start_notify: Any) -> None:
    svc = await start_notify()
    g1 = await svc.publish(_grant("g1", ["bob"]), source="charts")
    await svc.db["notice_refs"].delete_many({})  # as before the lookup existed
    assert await svc.store.told_about(grant_id="g1") == set()
    assert await svc.store.index_refs() == 1
    assert await svc.store.told_about(grant_id="g1") == {"bob"}
    assert await svc.store.index_refs() == 0  # ran to its end once: not again
    # a notice written afterwards by a release that kept no lookup: listed once rebuild-lookups ran
    from clinishare_notify.__main__ import rebuild_lookups

    await svc.publish(_grant("g2", ["carol"]), source="charts")
    await svc.db["notice_refs"].delete_many({"_id": {"$regex": "^grant:g2"}})
    assert await svc.store.told_about(grant_id="g2") == set()
    assert (await rebuild_lookups(svc.db))["notice_lookups"] == 2
    assert await svc.store.told_about(grant_id="g2") == {"carol"}
    assert await svc.store.told_about(grant_id="g1") == {"bob"}
    assert await svc.store.withdraw_grant("g1") == 1
    assert (await svc.store.get(f"{g1.id}:bob", "bob"))["read"] is True
