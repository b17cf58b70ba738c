"""The form list query and ``can_administer`` are the same rule: random forms, sharing options and viewer
offices (on the in-process engine) must give exactly the forms ``can_administer`` allows on the stored
rule, each once, newest first (the author's sharing list now is applied after the query, on its page)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinishare_forms.domain.access import SharingRule, can_administer
from clinishare_forms.store import FormStore
from clinishare_shared.mongo import InProcessMongoClient, new_id
from clinishare_shared.pagination import PageQuery

VIEWER = "viewer"
office_ids = st.sampled_from(["off1", "off2", "off3"])

form_st = st.fixed_dictionaries({
    "author": st.sampled_from([VIEWER, "a1", "a2"]), "allow_others": st.booleans(),
    "practitioner_ids": st.lists(st.sampled_from([VIEWER, "a1", "a2", "x"]), max_size=2, unique=True),
    "office_ids": st.lists(office_ids, max_size=2, unique=True),
})


async def _check(forms: list[dict[str, Any]], viewer_offices: list[str]) -> None:
    store = FormStore(InProcessMongoClient()["agreement"])
    written = []
    for f in forms:
        sharing = {"allow_others": f["allow_others"], "practitioner_ids": f["practitioner_ids"],
                   "office_ids": f["office_ids"], "author_sees_all_submissions": True,
                   "others_see_all_submissions": False}
        doc = {"_id": new_id(), "author_id": f["author"], "title": "T", "fields": [], "sharing": sharing,
               "version": 1, "revision": 0, "versions": []}
        await store.insert_form(doc)
        written.append(doc)
    found = await store.visible_forms(VIEWER, viewer_offices, PageQuery(limit=100, cursor=None))
    expected = [d["_id"] for d in reversed(written)
                if can_administer(SharingRule.of(d["sharing"]), d["author_id"], VIEWER, viewer_offices)]
    assert [d["_id"] for d in found] == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forms=st.lists(form_st, max_size=8), viewer_offices=st.lists(office_ids, max_size=3, unique=True))
def test_form_list_query_agrees_with_can_administer(forms: list[dict[str, Any]], viewer_offices: list[str]) -> None:
    asyncio.run(_check(forms, viewer_offices))
