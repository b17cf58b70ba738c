"""Who can see this agrees with the read check: for generated sharing set-ups (office memberships and
roles, the author's connections, grants of every rule, revoked and expired ones), the access list is
exactly the set of practitioners whose read succeeds, each with the grounds that read finds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinishare_charts.domain.access import RULES
from clinishare_charts.service import read_grounds, readers, revoke_grant, stage_chart, stage_grant
from clinishare_charts.store import ChartStore
from clinishare_shared.events import (
    ConnectionCreated, OfficeCreated, OfficeMember, PatientRegistered, make_event,
)
from clinishare_shared.mongo import InProcessMongoClient
from clinishare_shared.projection import IdentityProjection

AUTHOR = "a"
PEOPLE = ["a", "b", "c", "d", "e"]
OFFICES = ["o1", "o2"]
NOW = datetime.now(UTC)

setup_st = st.fixed_dictionaries({
    "rosters": st.fixed_dictionaries({o: st.dictionaries(st.sampled_from(PEOPLE), st.sampled_from(
        ["practitioner", "staff"])) for o in OFFICES}),
    "connections": st.lists(st.sampled_from(["b", "c", "d", "e", "o1", "o2"]), unique=True),
    "grants": st.lists(st.fixed_dictionaries({
        "rule": st.sampled_from(RULES), "own_chart": st.booleans(), "own_patient": st.booleans(),
        "people": st.lists(st.sampled_from(PEOPLE[1:]), unique=True, max_size=3),
        "offices": st.lists(st.sampled_from(OFFICES), unique=True, max_size=2),
        "state": st.sampled_from(["active", "active", "revoked", "expired", "expires_later"]),
    }), max_size=4),
})


async def _check(setup: dict[str, Any]) -> None:
    db = InProcessMongoClient()["agreement"]
    projection = IdentityProjection(db)
    handlers = projection.handlers

    async def feed(data: Any, subject: str) -> None:
        await handlers[data.event_type](make_event(data, source="identity", subject=subject))

    for office, roster in setup["rosters"].items():
        members = [OfficeMember(account_id=p, role=r) for p, r in roster.items()]
        await feed(OfficeCreated(office_id=office, owner_id=next(iter(roster), "z"), name=office, version=1,
                                 members=members), office)
    for i, target in enumerate(setup["connections"]):
        kind = "office" if target.startswith("o") else "practitioner"
        await feed(ConnectionCreated(connection_id=f"c{i}", owner_id=AUTHOR, target_kind=kind, target_id=target), "c")
    await feed(PatientRegistered(patient_id="p1", registered_by=AUTHOR, version=1, care_team=[AUTHOR]), "p1")
    store = ChartStore(db)
    chart = await stage_chart(store=store, author_id=AUTHOR, patient_id="p1", patient_name="N", title="T", body="")
    other = await stage_chart(store=store, author_id=AUTHOR, patient_id="p2", patient_name="N", title="T", body="")
    for g in setup["grants"]:
        expires = {"expired": NOW - timedelta(seconds=1), "expires_later": NOW + timedelta(days=1)}.get(g["state"])
        doc = await stage_grant(
            store=store, owner_id=AUTHOR, rule=g["rule"], chart_id=(chart if g["own_chart"] else other)["_id"],
            patient_id="p1" if g["own_patient"] else "p2", practitioner_ids=g["people"], office_ids=g["offices"],
            expires_at=expires)
        if g["state"] == "revoked":
            await revoke_grant(store=store, grant_id=doc["_id"], owner_id=AUTHOR)

    listed = await readers(store=store, projection=projection, chart=chart, now=NOW)
    reads = {p: await read_grounds(store=store, projection=projection, chart=chart, viewer_id=p, now=NOW)
             for p in PEOPLE if p != AUTHOR}
    assert {r.id for r in listed} == {p for p, found in reads.items() if found}
    for reader, found in listed.items():
        assert reader.kind == "practitioner"
        assert sorted(map(repr, found)) == sorted(map(repr, reads[reader.id]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=setup_st)
def test_access_list_is_exactly_who_can_read(setup: dict[str, Any]) -> None:
    asyncio.run(_check(setup))
