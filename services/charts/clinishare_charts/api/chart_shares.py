"""Chart Sharing Options: grant (with the patient's consent attested), list and revoke chart grants."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from clinishare_charts.api.deps import Authorization, DirectoryDep, ProjectionDep, StoreDep
from clinishare_charts.domain.schemas import GrantCreate, GrantPage, GrantRead
from clinishare_charts.store import ChartStore
from clinishare_shared.access import named_recipients
from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal, Principal
from clinishare_shared.directory import Directory, patient_in_care, refused_recipients
from clinishare_shared.pagination import PageParams
from clinishare_shared.problems import Problem
from clinishare_shared.projection import IdentityProjection
from clinishare_shared.ids import PathId

router = APIRouter(prefix="/v1/chart-shares", tags=["chart shares"])


async def grant_read(doc: dict[str, Any], projection: IdentityProjection) -> GrantRead:
    fields = {k: doc.get(k) for k in GrantRead.model_fields if k not in ("id", "recipients")}
    recipients = await named_recipients(projection, practitioner_ids=doc["practitioner_ids"],
                                        office_ids=doc["office_ids"])
    return GrantRead(id=doc["_id"], **fields, recipients=recipients)


async def _check_subject(body: GrantCreate, me: Principal, store: ChartStore, projection: IdentityProjection,
                         directory: Directory, authorization: str) -> str | None:
    """The grant must be about the caller's own charts: their chart, or a patient they write for.
    Returns the patient the grant is about (for ``chart``, the chart's patient; None for ``all``)."""
    if body.rule == "chart":
        chart = await store.chart(body.chart_id or "")
        if chart is None or chart["author_id"] != me.id:
            raise Problem(422, "chart_id is not one of your charts", invalid_ids=[body.chart_id])
        return str(chart["patient_id"])
    elif body.rule == "patient":
        pid = body.patient_id or ""
        if not (await store.has_charts_for(me.id, pid)
                or await patient_in_care(projection, directory, patient_id=pid, practitioner_id=me.id,
                                         authorization=authorization)):
            raise Problem(422, "patient_id is not a patient of yours", invalid_ids=[pid])
        return pid
    return None


@router.post("", status_code=201, response_model=GrantRead, summary="Share charts (Chart Sharing Options)")
async def create_grant(body: GrantCreate, me: CurrentPractitioner, store: StoreDep, projection: ProjectionDep,
                       directory: DirectoryDep, authorization: Authorization) -> GrantRead:
    # the whole request is validated before anything is written
    if me.id in body.practitioner_ids:
        raise Problem(422, "you cannot share with yourself", invalid_ids=[me.id])
    patient_id = await _check_subject(body, me, store, projection, directory, authorization)
    refused = await refused_recipients(projection, directory, account_id=me.id, authorization=authorization,
                                       practitioner_ids=body.practitioner_ids, office_ids=body.office_ids)
    if refused:
        raise Problem(422, "some recipients are not on your sharing list", invalid_ids=refused)
    grant = await store.create_grant(owner_id=me.id, rule=body.rule, chart_id=body.chart_id,
                                     patient_id=patient_id, practitioner_ids=body.practitioner_ids,
                                     office_ids=body.office_ids, expires_at=body.expires_at)
    return await grant_read(grant, projection)


@router.get("", response_model=GrantPage, summary="Your chart grants, newest first")
async def list_grants(me: CurrentPrincipal, store: StoreDep, projection: ProjectionDep, page: PageParams,
                      include_revoked: Annotated[bool, Query()] = False) -> GrantPage:
    items, cursor = page.page(await store.own_grants(me.id, include_revoked=include_revoked, page=page))
    return GrantPage(items=[await grant_read(g, projection) for g in items], next_cursor=cursor)


@router.delete("/{grant_id}", status_code=204, summary="Revoke a grant; access ends at once")
async def revoke_grant(grant_id: PathId, me: CurrentPrincipal,
                       store: StoreDep) -> Response:
    grant = await store.grant(grant_id, owner_id=me.id)
    if grant is None:
        raise Problem(404, "grant not found")
    await store.revoke_grant(grant)  # revoking a revoked grant changes nothing and announces nothing
    return Response(status_code=204)
