"""The inbox and preferences over HTTP (a real server), fed by events on the in-memory bus."""

from __future__ import annotations

from typing import Any

from clinishare_shared.events import (
    ChartShareExpired, DocumentShareExpired,
    ChartNoteAdded, ChartShareGranted, ChartShareRevoked, ConnectionCreated, DocumentShared, DocumentUnshared,
    FormAssigned,
)
from clinishare_shared.testing import bearer


def note(n: int, *, chart_author: str = "bob", author: str = "alice") -> ChartNoteAdded:
    return ChartNoteAdded(note_id=f"n{n}", chart_id=f"c{n}", chart_author_id=chart_author, author_id=author)


async def test_inbox_lists_newest_first_filters_unread_and_marks_read(start_notify: Any, signer: Any) -> None:
    svc = await start_notify()
    await svc.account("alice", name="Dr. Alice Smith", email="alice@clinic.test")
    first = await svc.publish(note(1))
    await svc.publish(ChartShareGranted(grant_id="g1", owner_id="alice", rule="chart", chart_id="c9",
                                        practitioner_ids=["bob"], office_ids=[]))
    bob = bearer(signer, "bob")
    async with svc.client() as http:
        body = (await http.get("/v1/notifications", headers=bob)).json()
        assert [i["type"] for i in body["items"]] == ["charts.share.granted", "charts.note.added"]
        assert body["next_cursor"] is None
        item = body["items"][1]
        assert item == {"id": f"{first.id}:bob", "type": "charts.note.added", "created_at": item["created_at"],
                        "read": False, "title": "Dr. Alice Smith added a note to your chart", "link": "/v1/charts/c1"}

        r = await http.post(f"/v1/notifications/{item['id']}/read", headers=bob)
        assert r.status_code == 200 and r.json() == {**item, "read": True}
        again = await http.post(f"/v1/notifications/{item['id']}/read", headers=bob)
        assert again.status_code == 200 and again.json()["read"] is True

        unread = (await http.get("/v1/notifications", params={"unread": "true"}, headers=bob)).json()
        assert [i["type"] for i in unread["items"]] == ["charts.share.granted"]
        read = (await http.get("/v1/notifications", params={"unread": "false"}, headers=bob)).json()
        assert [i["id"] for i in read["items"]] == [item["id"]]


async def test_someone_elses_notification_is_not_found(start_notify: Any, signer: Any) -> None:
    svc = await start_notify()
    event = await svc.publish(note(1))
    async with svc.client() as http:
        r = await http.post(f"/v1/notifications/{event.id}:bob/read", headers=bearer(signer, "carol"))
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        assert (await http.post("/v1/notifications/nope/read", headers=bearer(signer, "bob"))).status_code == 404
        assert (await http.get("/v1/notifications", headers=bearer(signer, "carol"))).json()["items"] == []
        # the owner's copy is untouched
        mine = (await http.get("/v1/notifications", headers=bearer(signer, "bob"))).json()["items"]
        assert [i["read"] for i in mine] == [False]


async def test_pagination(start_notify: Any, signer: Any) -> None:
    svc = await start_notify()
    for n in range(5):
        await svc.publish(note(n))
    seen: list[str] = []
    cursor: str | None = None
    async with svc.client() as http:
        for _ in range(3):
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/v1/notifications", params=params, headers=bearer(signer, "bob"))).json()
            seen += [i["link"] for i in page["items"]]
            cursor = page["next_cursor"]
        assert cursor is None
        assert seen == [f"/v1/charts/c{n}" for n in (4, 3, 2, 1, 0)]
        bad = await http.get("/v1/notifications", params={"cursor": "x"}, headers=bearer(signer, "bob"))
        assert bad.status_code == 422


async def test_every_account_kind_has_an_inbox(start_notify: Any, signer: Any) -> None:
    svc = await start_notify()
    await svc.office("o1", "alice", {"alice": "practitioner", "sam": "staff"})
    await svc.publish(DocumentShared(document_id="d1", owner_id="alice", patient_ids=["p1"],
                                     offices=[{"office_id": "o1", "audience": "staff"}]))
    await svc.publish(FormAssigned(assignment_id="a1", form_id="f1", form_version=1, author_id="alice",
                                   practitioner_id="alice", patient_id="p1"))
    async with svc.client() as http:
        patient = (await http.get("/v1/notifications", headers=bearer(signer, "p1", "patient"))).json()["items"]
        assert [i["link"] for i in patient] == ["/v1/portal/forms", "/v1/portal/documents"]
        staff = (await http.get("/v1/notifications", headers=bearer(signer, "sam", "staff"))).json()["items"]
        assert [i["link"] for i in staff] == ["/v1/documents/d1"]
    # e-mail is disabled in this service (no SMTP host): recorded, never attempted
    assert {n["email"]["reason"] for n in await svc.notifications()} == {"email_disabled"}


async def test_connection_to_an_office_tells_its_owner(start_notify: Any, signer: Any) -> None:
    svc = await start_notify()
    await svc.office("o1", "olga", {"olga": "practitioner", "pete": "practitioner"})
    await svc.account("carol", name="Dr. Carol")
    await svc.publish(ConnectionCreated(connection_id="x1", owner_id="carol", target_kind="office", target_id="o1"))
    assert [(n["recipient_id"], n["title"]) for n in await svc.notifications()] == [
        ("olga", "Dr. Carol connected to your office with a Share PIN")]
    # the projection got the connection too (its handler and notify's share the event)
    assert await svc.db["idp_connections"].find_one({"_id": "x1"})


async def test_revoked_grant_withdraws_its_notices_and_the_recipients_are_told(start_notify: Any) -> None:
    svc = await start_notify()
    grant: dict[str, Any] = dict(grant_id="g1", owner_id="alice", rule="all", practitioner_ids=["bob", "carol"],
                                 office_ids=[])
    await svc.publish(ChartShareGranted(**grant))
    await svc.store.mark_read(next(n["_id"] for n in await svc.notifications(recipient_id="carol")), "carol")
    await svc.publish(DocumentShared(document_id="d1", owner_id="alice", practitioner_ids=["bob"]))
    await svc.publish(ChartShareRevoked(**grant))
    await svc.publish(DocumentUnshared(document_id="d1", owner_id="alice", practitioner_ids=["bob"]))
    await svc.publish(ChartShareRevoked(**grant))  # redelivered: nothing more, the notices of the end stay
    docs = {(n["recipient_id"], n["type"]): n for n in await svc.notifications()}
    assert len(docs) == 6
    assert docs[("bob", "charts.share.granted")]["read"] and docs[("bob", "charts.share.granted")]["withdrawn"]
    assert "withdrawn" not in docs[("carol", "charts.share.granted")]  # read before: left alone
    assert docs[("bob", "documents.shared")]["read"] is False  # an unshare takes back no notice
    # SPEC 10.1: revoking and unsharing tell the recipients (not the sharer), with no PHI
    for who in ("bob", "carol"):
        ended = docs[(who, "charts.share.revoked")]
        assert ended["read"] is False and ended["title"] == "A practitioner stopped sharing all of their charts with you"
    unshared = docs[("bob", "documents.unshared")]
    assert unshared["title"] == "A practitioner stopped sharing a document with you" and unshared["read"] is False
    assert ("alice", "charts.share.revoked") not in docs


async def test_expiry_tells_the_sharer_and_the_recipients(start_notify: Any) -> None:
    svc = await start_notify()
    grant: dict[str, Any] = dict(grant_id="g2", owner_id="alice", rule="chart", chart_id="c1",
                                 practitioner_ids=["bob"], office_ids=[])
    await svc.publish(ChartShareGranted(**grant))
    await svc.publish(ChartShareExpired(**grant))
    await svc.publish(DocumentShared(document_id="d1", owner_id="alice", patient_ids=["pat-1"]))
    await svc.publish(DocumentShareExpired(document_id="d1", owner_id="alice", patient_ids=["pat-1"]))
    docs = {(n["recipient_id"], n["type"]): n for n in await svc.notifications()}
    assert docs[("alice", "charts.share.expired")]["title"] == "Your chart share has expired"
    assert docs[("bob", "charts.share.expired")]["title"] == "A practitioner's share of a chart with you has expired"
    assert docs[("alice", "documents.share.expired")]["title"] == "Your share of a document has expired"
    patient = docs[("pat-1", "documents.share.expired")]
    assert patient["recipient_kind"] == "patient" and patient["link"] == "/v1/portal/documents"
    assert docs[("bob", "charts.share.granted")]["withdrawn"]
    # someone never told of a share is not told of its end (a revoke that overtook its grant, say)
    await svc.publish(ChartShareRevoked(grant_id="g3", owner_id="alice", rule="all", practitioner_ids=["dave"],
                                        office_ids=[]))
    assert not [n for n in await svc.notifications() if n["recipient_id"] == "dave"]


async def test_preferences_default_on_and_put(start_notify: Any, signer: Any) -> None:
    svc = await start_notify()
    async with svc.client() as http:
        bob = bearer(signer, "bob")
        assert (await http.get("/v1/notification-preferences", headers=bob)).json() == {"email": True}
        r = await http.put("/v1/notification-preferences", json={"email": False}, headers=bob)
        assert r.status_code == 200 and r.json() == {"email": False}
        assert (await http.get("/v1/notification-preferences", headers=bob)).json() == {"email": False}
        assert (await http.get("/v1/notification-preferences", headers=bearer(signer, "p1", "patient"))).json() \
            == {"email": True}
        bad = await http.put("/v1/notification-preferences", json={"email": "nope"}, headers=bob)
        assert bad.status_code == 422
        assert (await http.put("/v1/notification-preferences", json={}, headers=bob)).status_code == 422


async def test_401_without_a_valid_token(start_notify: Any, signer: Any) -> None:
    svc = await start_notify()
    async with svc.client() as http:
        for method, path in (("GET", "/v1/notifications"), ("POST", "/v1/notifications/x/read"),
                             ("GET", "/v1/notification-preferences"), ("PUT", "/v1/notification-preferences")):
            r = await http.request(method, path, json={"email": True})
            assert r.status_code == 401, path
            r = await http.request(method, path, json={"email": True}, headers={"Authorization": "Bearer junk"})
            assert r.status_code == 401, path
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).json()["status"] == "ready"
