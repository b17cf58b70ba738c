"""Charts: write your own (for patients in your care), list yours, list those shared with you, read one
with its notes, edit your own, add a note to any chart you can read; for the author: who can read it now
(``/access``) and who did (``/accesses``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from clinishare_charts import service
from clinishare_charts.api.deps import (
    Authorization, DirectoryDep, OwnChart, ProjectionDep, ReadableChart, StoreDep,
)
from clinishare_charts.domain.schemas import (
    AccessLogPage, AccessRead, ChartCreate, ChartPage, ChartRead, ChartUpdate, ChartWithNotes, NoteCreate, NoteRead,
)
from clinishare_charts.domain.stored import ChartDoc
from clinishare_shared.access import AccessList, access_list
from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.etag import IfMatch, tag
from clinishare_shared.mongo import now_ms
from clinishare_shared.pagination import PageParams, PageQuery
from clinishare_shared.projection import IdentityProjection

router = APIRouter(prefix="/v1/charts", tags=["charts"])
SearchQuery = Annotated[str | None, Query(max_length=200, description="case-insensitive substring of the "
                                                                        "chart title or the patient's name")]


async def chart_page(docs: list[ChartDoc], page: PageQuery, projection: IdentityProjection, *,
                     shared: bool = False) -> ChartPage:
    items, cursor = page.page(docs)
    names = await projection.names(d["author_id"] for d in items)
    return ChartPage(items=[ChartRead.from_doc(d, names, shared=shared) for d in items], next_cursor=cursor)


@router.post("", status_code=201, response_model=ChartRead, summary="Write a chart for a patient in your care")
async def create_chart(body: ChartCreate, me: CurrentPractitioner, store: StoreDep, directory: DirectoryDep,
                       projection: ProjectionDep, authorization: Authorization) -> ChartRead:
    chart = await service.create_chart(store=store, directory=directory, author_id=me.id,
                                       authorization=authorization, patient_id=body.patient_id, title=body.title,
                                       body=body.body)
    return ChartRead.from_doc(chart, await projection.names([me.id]))


@router.get("", response_model=ChartPage, summary="Your Charts, newest first")
async def list_own_charts(me: CurrentPrincipal, store: StoreDep, projection: ProjectionDep, page: PageParams,
                          q: SearchQuery = None) -> ChartPage:
    return await chart_page(await store.own_charts(me.id, q=q, page=page), page, projection)


@router.get("/shared-with-me", response_model=ChartPage, summary="Charts Shared With You, newest first")
async def list_shared_charts(me: CurrentPrincipal, store: StoreDep, projection: ProjectionDep, page: PageParams,
                             q: SearchQuery = None) -> ChartPage:
    docs = await service.shared_charts(store=store, projection=projection, viewer_id=me.id, q=q, page=page)
    return await chart_page(docs, page, projection, shared=True)


@router.get("/{chart_id}", response_model=ChartWithNotes, summary="A chart you can read, with its notes")
async def get_chart(access: ReadableChart, me: CurrentPrincipal, store: StoreDep, projection: ProjectionDep,
                    response: Response) -> ChartWithNotes:
    chart, notes = await service.read_chart(store=store, access=access, reader=me)
    tag(response, service.chart_etag(chart))
    names = await projection.names([chart["author_id"], *(n["author_id"] for n in notes)])
    return ChartWithNotes.from_doc(chart, names, shared=not access.own, notes=notes)


@router.patch("/{chart_id}", response_model=ChartRead, summary="Edit your own chart")
async def update_chart(body: ChartUpdate, access: ReadableChart, me: CurrentPrincipal, store: StoreDep,
                       projection: ProjectionDep, response: Response, if_match: IfMatch = None) -> ChartRead:
    updated = await service.update_chart(store=store, chart=access.item, editor_id=me.id,
                                         changes=body.model_dump(exclude_none=True), if_match=if_match)
    tag(response, service.chart_etag(updated))
    return ChartRead.from_doc(updated, await projection.names([me.id]))


@router.post("/{chart_id}/notes", status_code=201, response_model=NoteRead, summary="Add a note to a chart you can read")
async def add_note(body: NoteCreate, access: ReadableChart, me: CurrentPrincipal, store: StoreDep,
                   projection: ProjectionDep) -> NoteRead:
    note = await service.add_note(store=store, chart=access.item, author_id=me.id, text=body.text)
    return NoteRead.from_doc(note, await projection.names([me.id]))


@router.get("/{chart_id}/access", response_model=AccessList,
            summary="Who can read this chart now, and through which grants (its author only)")
async def chart_access(chart: OwnChart, store: StoreDep, projection: ProjectionDep) -> AccessList:
    return await access_list(await service.readers(store=store, projection=projection, chart=chart, now=now_ms()),
                             projection)


@router.get("/{chart_id}/accesses", response_model=AccessLogPage,
            summary="Who read this chart, and when, newest first (its author only)")
async def chart_accesses(chart: OwnChart, store: StoreDep, projection: ProjectionDep,
                         page: PageParams) -> AccessLogPage:
    items, cursor = page.page(await store.accesses_of(chart["_id"], page))
    names = await projection.names(e["accessor_id"] for e in items)
    return AccessLogPage(items=[AccessRead.from_doc(e, names) for e in items], next_cursor=cursor)
