"""Catch-up from identity's paged snapshot (``clinishare_shared.catchup``): facts go through the projection's
own version-checked handlers (a snapshot entry older than an applied event does not win), every page is
read, "behind" is a projection counting fewer events than identity's high-water mark, identity not
answering yet is retried, and the re-evaluation runs once caught up."""

from __future__ import annotations

import json
from typing import Any

from clinishare_shared.catchup import catch_up, replay_snapshot
from clinishare_shared.events import (
    AccountRegistered, ConnectionCreated, ConnectionDeleted, OfficeCreated, OfficeMember, OfficeMemberRemoved,
    PatientCareTeamChanged, PatientRegistered, make_event,
)
from clinishare_shared.projection import IdentityProjection


def _fact(data: Any) -> dict[str, Any]:
    """A snapshot item as identity serves it: the event's type and its data, through JSON."""
    return json.loads(json.dumps({"type": data.event_type, "data": data.model_dump(mode="json")}))


def _members(m: dict[str, str]) -> list[OfficeMember]:
    return [OfficeMember(account_id=a, role=r) for a, r in m.items()]  # type: ignore[arg-type]


class Source:
    """Identity's snapshot in ``pages``; ``failures`` first calls of ``high_water`` fail (not up yet)."""

    def __init__(self, facts: list[dict[str, Any]], *, page_size: int, high_water: int, failures: int = 0) -> None:
        self.facts, self.page_size, self.mark, self.failures = facts, page_size, high_water, failures
        self.pages_read = 0
        self.asked = 0

    async def high_water(self) -> int:
        self.asked += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("identity is not up yet")
        return self.mark

    async def snapshot_page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        start = int(cursor or 0)
        size = min(limit, self.page_size)
        self.pages_read += 1
        end = start + size
        return self.facts[start:end], (str(end) if end < len(self.facts) else None)


async def _apply(proj: IdentityProjection, data: Any) -> None:
    await proj.handlers[data.event_type](make_event(data, source="identity", subject="s"))


async def test_a_snapshot_entry_older_than_an_applied_event_does_not_win(db: Any) -> None:
    proj = IdentityProjection(db)
    await proj.ensure_indexes()
    # live events already applied: the office at version 3 (p2 left), the connection deleted, the care
    # team at version 2
    await _apply(proj, OfficeMemberRemoved(office_id="o1", account_id="p2", version=3,
                                           members=_members({"p1": "practitioner"})))
    await _apply(proj, ConnectionDeleted(connection_id="c1", owner_id="p1", target_kind="practitioner",
                                         target_id="p2", deleted_by="p1"))
    await _apply(proj, PatientCareTeamChanged(patient_id="pt1", changed_by="p1", version=2, care_team=["p1"],
                                              removed=["p2"]))
    # a snapshot read before those changes: older versions, the connection still live
    stale = [
        _fact(OfficeCreated(office_id="o1", owner_id="p1", name="North", version=2,
                            members=_members({"p1": "practitioner", "p2": "practitioner"}))),
        _fact(ConnectionCreated(connection_id="c1", owner_id="p1", target_kind="practitioner", target_id="p2")),
        _fact(PatientRegistered(patient_id="pt1", registered_by="p1", version=1, care_team=["p1", "p2"])),
    ]
    applied = await replay_snapshot(Source(stale, page_size=2, high_water=0), proj.handlers)
    assert applied == 3
    assert await proj.office_rosters(["o1"]) == {"o1": {"p1": "practitioner"}}
    office = await proj.office("o1")
    assert office["version"] == 3 and office["name"] == "North"  # the name only "created" carries is filled in
    assert (await proj.sharing_list("p1")).refused(practitioner_ids=["p2"], office_ids=[]) == ["p2"]
    assert await proj.care_team("pt1") == ["p1"] and not await proj.in_care("pt1", "p2")

    # a newer snapshot entry does win
    newer = [_fact(OfficeCreated(office_id="o1", owner_id="p1", name="North", version=4,
                                 members=_members({"p1": "practitioner", "p3": "staff"})))]
    await replay_snapshot(Source(newer, page_size=10, high_water=0), proj.handlers)
    assert await proj.office_rosters(["o1"]) == {"o1": {"p1": "practitioner", "p3": "staff"}}


async def test_every_page_is_applied_and_unknown_types_are_skipped(db: Any) -> None:
    proj = IdentityProjection(db)
    facts = [_fact(AccountRegistered(account_id=f"a{i}", kind="practitioner", name=f"Dr {i}",
                                     email=f"a{i}@clinic.org")) for i in range(7)]
    facts.insert(3, {"type": "identity.something.new", "data": {"x": 1}})  # a newer identity's fact
    source = Source(facts, page_size=3, high_water=7)
    assert await replay_snapshot(source, proj.handlers, page_size=3) == 7
    assert source.pages_read == 3
    assert await proj.names([f"a{i}" for i in range(7)]) == {f"a{i}": f"Dr {i}" for i in range(7)}
    assert await proj.high_water() == 7


async def test_catch_up_runs_when_empty_or_behind_and_not_when_level(db: Any) -> None:
    proj = IdentityProjection(db)
    await proj.ensure_indexes()
    reevaluated: list[int] = []

    async def after() -> None:
        reevaluated.append(1)

    facts = [_fact(AccountRegistered(account_id="a1", kind="practitioner", name="Dr A", email="a@c.org")),
             _fact(OfficeCreated(office_id="o1", owner_id="a1", name="N", version=2,
                                 members=_members({"a1": "practitioner"}))),
             _fact(ConnectionDeleted(connection_id="c1", owner_id="a1", target_kind="practitioner", target_id="b",
                                     deleted_by="a1"))]
    # empty, and identity answers only at the third try: retried, then replayed, then re-evaluated
    source = Source(facts, page_size=2, high_water=5, failures=2)
    assert await catch_up(projection=proj, handlers=proj.handlers, snapshot=source, after=after,
                          retry_max=0.05) == 3
    assert source.asked == 3 and reevaluated == [1]
    assert await proj.high_water() == 5  # 1 account + office version 2 + a connection and its deletion

    # level with identity: nothing replayed, nothing re-evaluated
    level = Source(facts, page_size=2, high_water=5)
    assert await catch_up(projection=proj, handlers=proj.handlers, snapshot=level, after=after) == 0
    assert level.pages_read == 0 and reevaluated == [1]

    # behind (identity counts one more event: a care-team change we missed): replayed
    more = [*facts, _fact(PatientRegistered(patient_id="pt", registered_by="a1", version=1, care_team=["a1"]))]
    behind = Source(more, page_size=2, high_water=6)
    assert await catch_up(projection=proj, handlers=proj.handlers, snapshot=behind, after=after) == 4
    assert behind.pages_read == 2 and reevaluated == [1, 1]
    assert await proj.in_care("pt", "a1")


async def test_without_a_snapshot_or_a_broker_there_is_nothing_to_catch_up_from(db: Any) -> None:
    proj = IdentityProjection(db)
    assert await catch_up(projection=proj, handlers=proj.handlers, snapshot=None, url=None) == 0
