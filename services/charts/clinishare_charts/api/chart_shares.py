"""Chart Sharing Options: grant (with the patient's consent attested), list and revoke chart grants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from clinishare_charts import service
from clinishare_charts.api.deps import Authorization, DirectoryDep, ProjectionDep, StoreDep
from clinishare_charts.domain.schemas import GrantCreate, GrantPage, GrantRead
from clinishare_charts.domain.stored import GrantDoc
from clinishare_shared.access import named_recipients
from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.ids import PathId
from clinishare_shared.pagination import PageParams
from clinishare_shared.projection import IdentityProjection

router = APIRouter(prefix="/v1/chart-shares", tags=["chart shares"])


async def grant_read(grant: GrantDoc, projection: IdentityProjection) -> GrantRead:
    return GrantRead.from_doc(grant, await named_recipients(projection, practitioner_ids=grant["practitioner_ids"],
                                                            office_ids=grant["office_ids"]))


@router.post("", status_code=201, response_model=GrantRead, summary="Share charts (Chart Sharing Options)")
async def create_grant(body: GrantCreate, me: CurrentPractitioner, store: StoreDep, projection: ProjectionDep,
                       directory: DirectoryDep, authorization: Authorization) -> GrantRead:
    grant = await service.create_grant(store=store, projection=projection, directory=directory, owner_id=me.id,
                                       authorization=authorization, rule=body.rule, chart_id=body.chart_id,
                                       patient_id=body.patient_id, practitioner_ids=body.practitioner_ids,
                                       office_ids=body.office_ids, expires_at=body.expires_at)
    return await grant_read(grant, projection)


@router.get("", response_model=GrantPage, summary="Your chart grants, newest first")
async def list_grants(me: CurrentPrincipal, store: StoreDep, projection: ProjectionDep, page: PageParams,
                      include_revoked: Annotated[bool, Query()] = False) -> GrantPage:
    items, cursor = page.page(await store.own_grants(me.id, include_revoked=include_revoked, page=page))
    return GrantPage(items=[await grant_read(g, projection) for g in items], next_cursor=cursor)


@router.delete("/{grant_id}", status_code=204, summary="Revoke a grant; access ends at once")
async def revoke_grant(grant_id: PathId, me: CurrentPrincipal, store: StoreDep) -> Response:
    await service.revoke_grant(store=store, grant_id=grant_id, owner_id=me.id)
    return Response(status_code=204)
