"""The shared-with-me query and ``can_read`` are the same rule: random charts, grants and memberships
(on the in-process engine) must give exactly the charts ``can_read`` allows, each once, newest first; both
ways of listing them (every reaching grant checked first, as a search does, or only those the page needs),
whole or a page of two at a time."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datetime import UTC, datetime

from clinishare_charts.domain.access import RULES, ChartRef, GrantRef, can_read, practitioner_offices, reaches
from clinishare_shared.domain.sharing import SharingList
from clinishare_charts.service import revoke_grant, stage_chart, stage_grant
from clinishare_charts.store import ChartStore
from clinishare_shared.mongo import InProcessMongoClient, new_id
from clinishare_shared.pagination import PageQuery

VIEWER = "viewer"
authors = st.sampled_from(["a1", "a2", VIEWER])
patients = st.sampled_from(["p1", "p2", "p3"])
offices = st.sampled_from(["o1", "o2", "o3"])

grant_st = st.fixed_dictionaries({
    "owner_id": authors, "rule": st.sampled_from(RULES), "chart_index": st.integers(0, 7), "patient_id": patients,
    "practitioner_ids": st.lists(st.sampled_from([VIEWER, "a1", "a2", "x"]), max_size=2, unique=True),
    "office_ids": st.lists(offices, max_size=2, unique=True), "revoked": st.booleans(),
})


async def _check(charts: list[tuple[str, str]], grants: list[dict[str, Any]], roles: dict[str, str]) -> None:
    db = InProcessMongoClient()["agreement"]
    store = ChartStore(db)
    chart_docs = []
    for author, patient in charts:
        chart_docs.append(await stage_chart(store=store, author_id=author, patient_id=patient, patient_name="N",
                                            title="T", body=""))
    refs = []
    for g in grants:
        chart_id = chart_docs[g["chart_index"] % len(chart_docs)]["_id"] if chart_docs else new_id()
        doc = await stage_grant(store=store, owner_id=g["owner_id"], rule=g["rule"],
                                chart_id=chart_id if g["rule"] == "chart" else None,
                                patient_id=g["patient_id"] if g["rule"] == "patient" else None,
                                practitioner_ids=g["practitioner_ids"], office_ids=g["office_ids"])
        if g["revoked"]:
            await revoke_grant(store=store, grant_id=doc["_id"], owner_id=g["owner_id"])
        refs.append(GrantRef.from_doc({**doc, "revoked_at": "now" if g["revoked"] else None}))
    now = datetime.now(UTC)
    listed = SharingList(practitioners={VIEWER: "pin", "a1": "office", "a2": "office"},
                         offices={"o1": "member", "o2": "pin"})  # o3 is on nobody's list
    reaching = [GrantRef.from_doc(g) for g in await store.grants_reaching(VIEWER, practitioner_offices(roles))]
    reaching = [g for g in reaching if g.active(now) and reaches(g, VIEWER, roles, listed)]
    found = await store.shared_charts(VIEWER, reaching, q=None, page=PageQuery(limit=100, cursor=None))
    ids = [d["_id"] for d in found]
    expected = [d["_id"] for d in reversed(chart_docs)
                if d["author_id"] != VIEWER and can_read(VIEWER, ChartRef.from_doc(d), refs, roles, listed, now)]
    assert ids == expected

    office_ids = practitioner_offices(roles)

    async def verify(docs: list[dict[str, Any]]) -> list[GrantRef]:
        active = [g for g in map(GrantRef.from_doc, docs) if g.active(now)]
        return [g for g in active if reaches(g, VIEWER, roles, listed)]

    whole = await store.shared_page(VIEWER, office_ids, verify, PageQuery(limit=100, cursor=None))
    assert [d["_id"] for d in whole] == expected
    paged: list[str] = []
    cursor: str | None = None
    while True:
        query = PageQuery(limit=2, cursor=cursor)
        items, cursor = query.page(await store.shared_page(VIEWER, office_ids, verify, query))
        paged += [d["_id"] for d in items]
        if cursor is None:
            break
    assert paged == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(charts=st.lists(st.tuples(authors, patients), max_size=8), grants=st.lists(grant_st, max_size=5),
       roles=st.dictionaries(offices, st.sampled_from(["practitioner", "staff"])))
def test_shared_with_me_query_agrees_with_can_read(charts: list[tuple[str, str]], grants: list[dict[str, Any]],
                                                   roles: dict[str, str]) -> None:
    asyncio.run(_check(charts, grants, roles))
