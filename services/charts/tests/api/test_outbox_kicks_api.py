"""Every write that stages events names the document it staged them in, so the outbox relay's next pass
reads just that document: a kick naming nothing would make the relay sweep every outbox collection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clinishare_shared.testing import record_kicks, wait_for


async def test_each_write_names_its_document_for_the_relay(charts: Any) -> None:
    await charts.identity.connect("dr-a", "dr-b")
    pid = await charts.identity.patient("Ada", "dr-a")
    kicks = record_kicks(charts.app.state.infra.relay)

    chart = await charts.chart("dr-a", pid)
    edited = await charts.http.patch(f"/v1/charts/{chart['id']}", json={"title": "Renamed"},
                                     headers=charts.auth("dr-a"))
    assert edited.status_code == 200, edited.text
    grant = await charts.share("dr-a", "chart", chart_id=chart["id"], practitioner_ids=["dr-b"])
    assert await charts.status("dr-b", chart["id"]) == 200  # a read by another: an access-log entry
    note = await charts.http.post(f"/v1/charts/{chart['id']}/notes", json={"text": "seen"},
                                  headers=charts.auth("dr-b"))
    assert note.status_code == 201, note.text
    assert (await charts.http.delete(f"/v1/chart-shares/{grant['id']}", headers=charts.auth("dr-a"))).status_code == 204
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()  # still ahead however slow the POST
    expiring = await charts.share("dr-a", "all", practitioner_ids=["dr-b"], expires_at=soon)
    await wait_for(lambda: ("chart_expiries", expiring["id"]) in kicks, message="the sweeper's claim named")

    accesses = (await charts.http.get(f"/v1/charts/{chart['id']}/accesses", headers=charts.auth("dr-a"))).json()
    assert kicks == [("charts", chart["id"]), ("charts", chart["id"]), ("chart_grants", grant["id"]),
                     ("chart_accesses", accesses["items"][0]["id"]), ("chart_notes", note.json()["id"]),
                     ("chart_grants", grant["id"]), ("chart_grants", expiring["id"]),
                     ("chart_expiries", expiring["id"])]
    published = await charts.flush()
    assert {"charts.chart.created", "charts.chart.updated", "charts.share.granted", "charts.chart.accessed",
            "charts.note.added", "charts.share.revoked", "charts.share.expired"} <= {e.type for e in published}
