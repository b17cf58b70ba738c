"""Who can see this agrees with the read check: for generated set-ups (office rosters, the author's
connections, sharing options), the access list is exactly the set of practitioners for whom the form's
read check (``may_administer``, what GET /v1/forms/{id} uses) succeeds."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinishare_forms.api.deps import Caller
from clinishare_forms.service import live_rule, may_administer
from clinishare_forms.domain.access import who_can_administer
from clinishare_shared.events import ConnectionCreated, OfficeCreated, OfficeMember, make_event
from clinishare_shared.mongo import InProcessMongoClient
from clinishare_shared.projection import IdentityProjection

AUTHOR, PEOPLE, OFFICES = "a", ["a", "b", "c", "d"], ["o1", "o2"]

setup_st = st.fixed_dictionaries({
    "rosters": st.fixed_dictionaries({o: st.dictionaries(st.sampled_from(PEOPLE), st.sampled_from(
        ["practitioner", "staff"])) for o in OFFICES}),
    "connections": st.lists(st.sampled_from(["b", "c", "d", "o1", "o2"]), unique=True),
    "sharing": st.fixed_dictionaries({
        "allow_others": st.booleans(),
        "practitioner_ids": st.lists(st.sampled_from(PEOPLE[1:]), unique=True),
        "office_ids": st.lists(st.sampled_from(OFFICES), unique=True)}),
})


async def _check(setup: dict[str, Any]) -> None:
    projection = IdentityProjection(InProcessMongoClient()["agreement"])

    async def feed(data: Any) -> None:
        await projection.handlers[data.event_type](make_event(data, source="identity", subject="s"))

    for office, roster in setup["rosters"].items():
        await feed(OfficeCreated(office_id=office, owner_id="z", name=office, version=1,
                                 members=[OfficeMember(account_id=p, role=r) for p, r in roster.items()]))
    for i, target in enumerate(setup["connections"]):
        await feed(ConnectionCreated(connection_id=f"c{i}", owner_id=AUTHOR,
                                     target_kind="office" if target.startswith("o") else "practitioner",
                                     target_id=target))
    form = {"_id": "f1", "author_id": AUTHOR, "sharing": setup["sharing"]}
    rule = await live_rule(form=form, projection=projection)
    listed = who_can_administer(rule, form_id="f1", author_id=AUTHOR,
                                rosters=await projection.office_rosters(rule.office_ids),
                                via=await projection.sharing_list(AUTHOR))
    reads = set()
    for p in PEOPLE[1:]:
        caller = Caller(p, frozenset(await projection.office_ids_of(p, role="practitioner")), "")
        if await may_administer(form=form, projection=projection, viewer_id=caller.id,
                                viewer_offices=caller.offices):
            reads.add(p)
    assert {r.id for r in listed} == reads


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=setup_st)
def test_access_list_is_exactly_who_can_read(setup: dict[str, Any]) -> None:
    asyncio.run(_check(setup))
