"""Charts: write your own (for patients in your care), list yours, list those shared with you, read one
with its notes, edit your own, add a note to any chart you can read; for the author: who can read it now
(``/access``) and who did (``/accesses``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from clinishare_charts.api.deps import (
    Authorization, DirectoryDep, OwnChart, ProjectionDep, ReadableChart, StoreDep,
)
from clinishare_charts.service import grants_reaching_now, readers
from clinishare_charts.domain.schemas import (
    AccessLogPage, AccessRead, ChartCreate, ChartPage, ChartRead, ChartUpdate, ChartWithNotes, NoteCreate, NoteRead,
)
from clinishare_shared.etag import IfMatch, check_if_match, entity_tag, precondition_failed, tag
from clinishare_shared.access import AccessList, access_list
from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.mongo import now_ms
from clinishare_shared.pagination import PageParams, PageQuery
from clinishare_shared.problems import Problem

router = APIRouter(prefix="/v1/charts", tags=["charts"])
SearchQuery = Annotated[str | None, Query(max_length=200, description="case-insensitive substring of the "
                                                                        "chart title or the patient's name")]


def chart_read(doc: dict[str, Any], names: dict[str, str], *, shared: bool = False) -> ChartRead:
    fields = {k: doc.get(k) for k in ChartRead.model_fields if k not in ("id", "author_name", "sharer_name")}
    author_name = names.get(doc["author_id"])
    return ChartRead(id=doc["_id"], **fields, author_name=author_name, sharer_name=author_name if shared else None)


def note_read(doc: dict[str, Any], names: dict[str, str]) -> NoteRead:
    return NoteRead(id=doc["_id"], chart_id=doc["chart_id"], author_id=doc["author_id"],
                    author_name=names.get(doc["author_id"]), text=doc["text"], created_at=doc["created_at"])


async def chart_page(docs: list[dict[str, Any]], page: PageQuery, projection: ProjectionDep, *,
                     shared: bool = False) -> ChartPage:
    items, cursor = page.page(docs)
    names = await projection.names(d["author_id"] for d in items)
    return ChartPage(items=[chart_read(d, names, shared=shared) for d in items], next_cursor=cursor)


@router.post("", status_code=201, response_model=ChartRead, summary="Write a chart for a patient in your care")
async def create_chart(body: ChartCreate, me: CurrentPractitioner, store: StoreDep, directory: DirectoryDep,
                       projection: ProjectionDep, authorization: Authorization) -> ChartRead:
    # identity answers only for patients in the caller's care team, and gives the name we keep for search;
    # if identity cannot answer the directory raises 503 rather than guessing
    patient = await directory.patient(body.patient_id, authorization=authorization)
    if patient is None:
        raise Problem(422, "patient_id is not a patient in your care", invalid_ids=[body.patient_id])
    doc = await store.create_chart(author_id=me.id, patient_id=body.patient_id, patient_name=patient.get("name"),
                                   title=body.title, body=body.body)
    return chart_read(doc, await projection.names([me.id]))


@router.get("", response_model=ChartPage, summary="Your Charts, newest first")
async def list_own_charts(me: CurrentPrincipal, store: StoreDep, projection: ProjectionDep, page: PageParams,
                          q: SearchQuery = None) -> ChartPage:
    return await chart_page(await store.own_charts(me.id, q=q, page=page), page, projection)


@router.get("/shared-with-me", response_model=ChartPage, summary="Charts Shared With You, newest first")
async def list_shared_charts(me: CurrentPrincipal, store: StoreDep, projection: ProjectionDep, page: PageParams,
                             q: SearchQuery = None) -> ChartPage:
    grants = await grants_reaching_now(store=store, projection=projection, viewer_id=me.id, now=now_ms())
    docs = await store.shared_charts(me.id, grants, q=q, page=page)
    return await chart_page(docs, page, projection, shared=True)


@router.get("/{chart_id}", response_model=ChartWithNotes, summary="A chart you can read, with its notes")
async def get_chart(access: ReadableChart, me: CurrentPrincipal, store: StoreDep, projection: ProjectionDep,
                    response: Response) -> ChartWithNotes:
    chart = access.item
    tag(response, chart_etag(chart))
    if not access.own:
        # the read is accounted for (audit) in the same write as the access-log entry
        await store.record_access(chart=chart, accessor_id=me.id, accessor_kind=me.kind,
                                  grant_ids=list(dict.fromkeys(g.grant_id for g in access.grounds)))
    notes = await store.notes_of(chart["_id"])
    names = await projection.names([chart["author_id"], *(n["author_id"] for n in notes)])
    return ChartWithNotes(**chart_read(chart, names, shared=not access.own).model_dump(),
                          notes=[note_read(n, names) for n in notes])


@router.patch("/{chart_id}", response_model=ChartRead, summary="Edit your own chart")
async def update_chart(body: ChartUpdate, access: ReadableChart, me: CurrentPrincipal, store: StoreDep,
                       projection: ProjectionDep, response: Response, if_match: IfMatch = None) -> ChartRead:
    chart = access.item
    if chart["author_id"] != me.id:
        raise Problem(403, "only the chart's author edits it")
    check_if_match(if_match, chart_etag(chart))
    changes = body.model_dump(exclude_none=True)
    # with If-Match, only the version that was matched is changed (a write in between makes this 412)
    updated = await store.update_chart(chart, changes, unchanged_since=chart["updated_at"] if if_match else None) \
        if changes else chart
    if updated is None:
        raise precondition_failed() if if_match else Problem(404, "chart not found")
    tag(response, chart_etag(updated))
    return chart_read(updated, await projection.names([me.id]))


def chart_etag(chart: dict[str, Any]) -> str:
    """Changes with every edit of the chart itself (title, body); notes do not change it."""
    return entity_tag(chart["_id"], chart["updated_at"].isoformat())


@router.post("/{chart_id}/notes", status_code=201, response_model=NoteRead, summary="Add a note to a chart you can read")
async def add_note(body: NoteCreate, access: ReadableChart, me: CurrentPrincipal, store: StoreDep,
                   projection: ProjectionDep) -> NoteRead:
    note = await store.add_note(chart=access.item, author_id=me.id, text=body.text)
    return note_read(note, await projection.names([me.id]))


@router.get("/{chart_id}/access", response_model=AccessList,
            summary="Who can read this chart now, and through which grants (its author only)")
async def chart_access(chart: OwnChart, store: StoreDep, projection: ProjectionDep) -> AccessList:
    return await access_list(await readers(store=store, projection=projection, chart=chart, now=now_ms()),
                             projection)


@router.get("/{chart_id}/accesses", response_model=AccessLogPage,
            summary="Who read this chart, and when, newest first (its author only)")
async def chart_accesses(chart: OwnChart, store: StoreDep, projection: ProjectionDep,
                         page: PageParams) -> AccessLogPage:
    items, cursor = page.page(await store.accesses_of(chart["_id"], page))
    names = await projection.names(e["accessor_id"] for e in items)
    return AccessLogPage(items=[AccessRead(id=e["_id"], accessor_id=e["accessor_id"], accessor_kind=e["accessor_kind"],
                                           accessor_name=names.get(e["accessor_id"]), grant_ids=e["grant_ids"],
                                           at=e["at"]) for e in items], next_cursor=cursor)
