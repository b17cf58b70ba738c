"""The read-side use cases that turn stored grants and the identity projection into the access rule's
plain data: whether (and through what) a viewer reads a chart, everyone who can, the grants reaching a
viewer. The read check and "who can see this" both go through ``domain.access.grounds``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clinishare_charts.domain.access import ChartRef, GrantRef, grounds, reaches, who_can_read
from clinishare_charts.store import ChartStore
from clinishare_shared.domain.access import Ground, Reader
from clinishare_shared.projection import IdentityProjection


async def read_grounds(*, store: ChartStore, projection: IdentityProjection, chart: dict[str, Any],
                       viewer_id: str, now: datetime) -> list[Ground]:
    """How a viewer other than the author reads the chart now (empty: they may not)."""
    grants = [GrantRef.from_doc(g) for g in await store.grants_covering(chart)]
    return grounds(viewer_id, ChartRef.from_doc(chart), grants, await projection.roles_of(viewer_id),
                   await projection.sharing_list(chart["author_id"]), now)


async def readers(*, store: ChartStore, projection: IdentityProjection, chart: dict[str, Any],
                  now: datetime) -> dict[Reader, list[Ground]]:
    """Everyone but the author who can read the chart now, office memberships expanded now."""
    grants = [GrantRef.from_doc(g) for g in await store.grants_covering(chart)]
    rosters = await projection.office_rosters(o for g in grants for o in g.office_ids)
    return who_can_read(ChartRef.from_doc(chart), grants, rosters, await projection.sharing_list(chart["author_id"]),
                        now)


async def grants_reaching_now(*, store: ChartStore, projection: IdentityProjection, viewer_id: str,
                              now: datetime) -> list[GrantRef]:
    """The active grants that reach the viewer now, each recipient still on its sharer's sharing list."""
    offices = await projection.roles_of(viewer_id)
    practitioner_offices = sorted(o for o, role in offices.items() if role == "practitioner")
    active = [g for g in (GrantRef.from_doc(d) for d in await store.grants_reaching(viewer_id, practitioner_offices))
              if g.active(now)]
    lists = await projection.sharing_lists(g.owner_id for g in active)  # every sharer's, in two queries
    return [g for g in active if reaches(g, viewer_id, offices, lists[g.owner_id])]
