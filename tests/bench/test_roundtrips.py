"""Charts' hot requests touch their own collections by ``_id`` only (``bench.roundtrips``, on the test
engine's server): a listing, a read and a share creation send no filter on a charts collection that
FerretDB's SQLite handler would answer by reading the whole collection. (The identity projection's and the
outbox relay's own queries are listed by the tool and not judged here.)"""

from __future__ import annotations

import pytest

from bench.roundtrips import run

CHARTS_OWN = ("charts", "chart_notes", "chart_grants", "chart_accesses", "chart_reach", "chart_index")


async def test_hot_charts_requests_read_their_collections_by_id_only(mongodb_url: str | None) -> None:
    if not mongodb_url:
        pytest.skip("needs a server (FerretDB or MongoDB): the in-process engine sends no commands to count")
    counted = await run(mongodb_url, 60)
    assert set(counted) == {"list", "read", "create_share"}
    for name, rows in counted.items():
        own = [r for r in rows if r["collection"] in CHARTS_OWN]
        assert own, name
        assert [r for r in own if not r["pushed_down"]] == [], name
    loads = sum(r["count"] for r in counted["list"] if r["collection"] == "charts")
    assert 0 < loads <= 51  # at most a page (and one) of charts, whatever the collection holds
