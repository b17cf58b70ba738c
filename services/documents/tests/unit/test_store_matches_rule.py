"""The "shared with me" query and ``can_read`` are the same rule: random documents, shares, deletions and
readers (on the in-process engine) must give exactly the documents ``can_read`` allows, each once,
newest first (the expiry and sharing-list checks come after the query, on the page it found)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinishare_documents.domain.access import ShareState, can_read, reader_keys, share_keys
from clinishare_documents.domain.stored import Document, Shares
from clinishare_documents.store import DocumentStore
from clinishare_shared.mongo import InProcessMongoClient, new_id, now_ms
from clinishare_shared.pagination import PageQuery

VIEWER = "viewer"
owners = st.sampled_from(["o1", "o2"])
patients = st.sampled_from([VIEWER, "p1", "p2"])
practitioners = st.sampled_from([VIEWER, "d1", "d2"])
offices = st.tuples(st.sampled_from(["off1", "off2", "off3"]), st.sampled_from(["practitioners", "staff"]))

doc_st = st.fixed_dictionaries({
    "owner": owners, "workspace": st.one_of(st.none(), patients),
    "patients": st.lists(patients, max_size=2, unique=True),
    "practitioners": st.lists(practitioners, max_size=2, unique=True),
    "offices": st.lists(offices, max_size=2, unique=True), "deleted": st.booleans(),
})


async def _check(docs: list[dict[str, Any]], kind: str, roles: dict[str, str], filter_patient: str | None) -> None:
    store = DocumentStore(InProcessMongoClient()["agreement"])
    written = []
    for d in docs:
        shares = ShareState.of(d["patients"], d["practitioners"], d["offices"])
        doc = Document(id=new_id(), owner_id=d["owner"], filename="f", content_type="text/plain", size=1,
                       sha256="x", file_id=new_id(), patient_id=d["workspace"], shares=Shares.of(shares),
                       share_keys=share_keys(shares), created_at=now_ms(), updated_at=now_ms())
        await store.insert(doc)
        if d["deleted"]:
            assert await store.soft_delete(doc, [])
        else:
            written.append(doc)
    found, _ = await store.list_shared(reader_keys(VIEWER, kind, roles), patient_id=filter_patient,
                                    page=PageQuery(limit=100, cursor=None))
    expected = [d.id for d in reversed(written)
                if can_read(owner_id=d.owner_id, keys=d.share_keys, account_id=VIEWER, kind=kind, office_roles=roles)
                and (filter_patient is None or d.patient_id == filter_patient)]
    assert [d.id for d in found] == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=st.lists(doc_st, max_size=6), kind=st.sampled_from(["practitioner", "staff", "patient"]),
       roles=st.dictionaries(st.sampled_from(["off1", "off2", "off3"]), st.sampled_from(["practitioner", "staff"])),
       filter_patient=st.one_of(st.none(), patients))
def test_shared_with_me_query_agrees_with_can_read(docs: list[dict[str, Any]], kind: str, roles: dict[str, str],
                                                   filter_patient: str | None) -> None:
    asyncio.run(_check(docs, kind, roles, filter_patient))
