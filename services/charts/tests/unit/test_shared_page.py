"""Charts Shared With You without a search checks only the grants its page needs: a viewer many grants reach
pays for a page, not for every grant, and a grant the lookup still lists but that no longer reaches the viewer
(revoked, expired, no longer naming them) gives nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clinishare_charts.domain.access import GrantRef
from clinishare_charts.service import stage_chart, stage_grant
from clinishare_charts.store import VERIFY_EACH, ChartStore
from clinishare_shared.pagination import PageQuery

VIEWER, OWNER = "dr-viewer", "dr-owner"


async def _page(store: ChartStore, limit: int, cursor: str | None = None) -> tuple[list[str], int, str | None]:
    """One page: the chart ids, how many grants were loaded to decide it, and the next cursor."""
    loaded: list[str] = []
    now = datetime.now(UTC)

    async def verify(docs: list[dict[str, Any]]) -> list[GrantRef]:
        loaded.extend(d["_id"] for d in docs)
        return [g for g in map(GrantRef.from_doc, docs) if g.active(now)]

    query = PageQuery(limit=limit, cursor=cursor)
    docs = await store.shared_page(VIEWER, [], verify, query)
    items, next_cursor = query.page(docs)
    assert len(loaded) == len(set(loaded)), "a grant is loaded once per page"
    return [d["_id"] for d in items], len(loaded), next_cursor


async def test_a_page_loads_the_grants_it_needs_not_every_grant(mongo_client: Any, db_name: str) -> None:
    store = ChartStore(mongo_client[db_name])
    charts = [await stage_chart(store=store, author_id=OWNER, patient_id=f"pt-{i}", patient_name=None, title="T",
                                body="") for i in range(12)]
    for chart in charts:  # one grant for each chart
        await stage_grant(store=store, owner_id=OWNER, rule="chart", chart_id=chart["_id"],
                          patient_id=chart["patient_id"], practitioner_ids=[VIEWER], office_ids=[])
    newest = charts[-1]
    for _ in range(20):  # the newest chart shared again and again
        await stage_grant(store=store, owner_id=OWNER, rule="chart", chart_id=newest["_id"],
                          patient_id=newest["patient_id"], practitioner_ids=[VIEWER], office_ids=[])
    expected = [c["_id"] for c in reversed(charts)]

    first, loaded, cursor = await _page(store, 3)
    assert first == expected[:3]
    # 4 charts decide a page of 3 (one more tells the cursor): one grant each, and for the chart shared 21
    # times at most one round of VERIFY_EACH
    assert loaded <= 3 + VERIFY_EACH < 32, loaded
    rest: list[str] = []
    while cursor is not None:
        ids, _, cursor = await _page(store, 3, cursor)
        rest += ids
    assert first + rest == expected


async def test_a_grant_the_lookup_still_lists_gives_nothing_once_it_no_longer_reaches(
        mongo_client: Any, db_name: str) -> None:
    """Between a revoke's write and its lookup's clean-up (or an expiry's), the lookup names a grant that no
    longer reaches anyone: the loaded grant decides, whatever the lookup says."""
    store = ChartStore(mongo_client[db_name])
    charts = [await stage_chart(store=store, author_id=OWNER, patient_id="pt", patient_name=None, title="T", body="")
              for _ in range(4)]
    revoked, expired, elsewhere, kept = [
        await stage_grant(store=store, owner_id=OWNER, rule="chart", chart_id=c["_id"], patient_id="pt",
                          practitioner_ids=[VIEWER], office_ids=[]) for c in charts]
    past = datetime.now(UTC) - timedelta(minutes=1)
    await store.grants.update_one({"_id": revoked["_id"]}, {"$set": {"revoked_at": past}})
    await store.grants.update_one({"_id": expired["_id"]}, {"$set": {"expires_at": past}})
    await store.grants.update_one({"_id": elsewhere["_id"]}, {"$set": {"practitioner_ids": ["dr-someone-else"]}})
    ids, _, cursor = await _page(store, 50)
    assert ids == [charts[3]["_id"]] and cursor is None
    # a chart still covered by another grant stays listed when one of its grants is revoked
    await stage_grant(store=store, owner_id=OWNER, rule="patient", chart_id=None, patient_id="pt",
                      practitioner_ids=[VIEWER], office_ids=[])
    ids, _, _ = await _page(store, 50)
    assert ids == [c["_id"] for c in reversed(charts)]
    assert kept["_id"]
