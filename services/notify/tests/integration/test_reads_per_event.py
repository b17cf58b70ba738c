"""What one event costs notify in reads of people: the accounts it names (who acted, who is told) and their
e-mail preferences are read once per event, for all recipients together, and, when the event names no
office, in the same first round as the tombstone check; office members are read once the offices are in.
The e-mail worker reads them once per claimed batch, not once per e-mail."""

from __future__ import annotations

from typing import Any

from clinishare_shared.events import ChartShareGranted


def _record(svc: Any) -> list[tuple[str, list[str]]]:
    """Calls of the reads of people, in order: (name, the ids asked)."""
    calls: list[tuple[str, list[str]]] = []
    projection, store = svc.app.state.projection, svc.store
    for owner, name in ((projection, "accounts"), (projection, "account"), (store, "wants_emails"),
                        (store, "wants_email")):
        real = getattr(owner, name)

        async def recording(ids: Any, _real: Any = real, _name: str = name) -> Any:
            calls.append((_name, sorted(ids) if not isinstance(ids, str) else [ids]))
            return await _real(ids)

        setattr(owner, name, recording)
    return calls


async def test_a_share_with_practitioners_reads_its_people_once_in_the_first_round(start_notify: Any,
                                                                                   smtp: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    for r in ("alice", "bob", "carol", "dave"):
        await svc.account(r, name=f"Dr {r}", email=f"{r}@clinic.test")
    await svc.store.set_email_preference("carol", False)
    calls = _record(svc)
    await svc.publish(ChartShareGranted(grant_id="g1", owner_id="alice", rule="all",
                                        practitioner_ids=["bob", "carol", "dave"], office_ids=[]), source="charts")
    assert calls == [("accounts", ["alice", "bob", "carol", "dave"]), ("wants_emails", ["bob", "carol", "dave"])]
    mails = {n["recipient_id"]: n["email"] for n in await svc.notifications(type="charts.share.granted")}
    assert mails["carol"]["status"] == "skipped" and mails["carol"]["reason"] == "preference_off"
    assert mails["bob"]["status"] == mails["dave"]["status"] == "pending"
    assert (await svc.notifications(recipient_id="bob"))[0]["actor_id"] == "alice"

    calls.clear()  # the worker: one read of each for the batch of e-mails, then the sends
    assert await svc.worker.run_once() == 2 and len(smtp.messages) == 2
    assert calls == [("accounts", ["bob", "dave"]), ("wants_emails", ["bob", "dave"])]


async def test_a_share_with_an_office_reads_its_members_after_the_office(start_notify: Any, smtp: Any) -> None:
    svc = await start_notify(smtp_host="127.0.0.1", smtp_port=smtp.port, email_poll_seconds=60)
    await svc.worker.stop()
    for r in ("alice", "bob", "sam"):
        await svc.account(r, name=f"Dr {r}", email=f"{r}@clinic.test")
    await svc.office("o1", "bob", {"bob": "practitioner", "sam": "staff"})
    calls = _record(svc)
    await svc.publish(ChartShareGranted(grant_id="g1", owner_id="alice", rule="all", practitioner_ids=[],
                                        office_ids=["o1"]), source="charts")
    told = sorted(n["recipient_id"] for n in await svc.notifications(type="charts.share.granted"))
    assert told  # whom an office share tells is recipients.py's rule; here: how they are read
    assert calls == [("accounts", ["alice"]), ("wants_emails", []), ("accounts", told), ("wants_emails", told)]
