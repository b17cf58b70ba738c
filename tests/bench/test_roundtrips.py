"""Charts' hot requests touch their own collections by ``_id`` only (``bench.roundtrips``, on the test
engine's server): a listing, a read and a share creation send no filter on a charts collection that
FerretDB's SQLite handler would answer by reading the whole collection. (The identity projection's and the
outbox relay's own queries are listed by the tool and not judged here.)"""

from __future__ import annotations

import pytest

from bench.roundtrips import pushed_down, run

CHARTS_OWN = ("charts", "chart_notes", "chart_grants", "chart_accesses", "chart_reach", "chart_index")


async def test_hot_charts_requests_read_their_collections_by_id_only(mongodb_url: str | None) -> None:
    if not mongodb_url:
        pytest.skip("needs a server (FerretDB or MongoDB): the in-process engine sends no commands to count")
    counted = await run(mongodb_url, 60)
    assert set(counted) == {"list", "read", "create_share"}
    for name, commands in counted.items():
        own = [c for c in commands if c["collection"] in CHARTS_OWN]
        assert own, name
        scanning = [c for c in own if c["filters"] and not all(pushed_down(f) for f in c["filters"])]
        assert scanning == [], (name, scanning)
    loads = [c for c in counted["list"] if c["collection"] == "charts"]
    assert 0 < len(loads) <= 51  # at most a page (and one) of charts, whatever the collection holds
