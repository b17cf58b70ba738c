"""Charts: write your own (for patients in your care), list yours, list those shared with you, read one
with its notes, edit your own, add a note to any chart you can read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from clinishare_charts.api.deps import Authorization, DirectoryDep, ReadableChart, StoreDep, ViewerOffices
from clinishare_charts.domain.access import practitioner_offices
from clinishare_charts.domain.schemas import (
    ChartCreate, ChartPage, ChartRead, ChartUpdate, ChartWithNotes, NoteCreate, NoteRead,
)
from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.pagination import PageParams
from clinishare_shared.problems import Problem

router = APIRouter(prefix="/v1/charts", tags=["charts"])
SearchQuery = Annotated[str | None, Query(max_length=200, description="case-insensitive substring of the "
                                                                        "chart title or the patient's name")]


def chart_read(doc: dict[str, Any]) -> ChartRead:
    return ChartRead(id=doc["_id"], **{k: doc.get(k) for k in ChartRead.model_fields if k != "id"})


def note_read(doc: dict[str, Any]) -> NoteRead:
    return NoteRead(id=doc["_id"], chart_id=doc["chart_id"], author_id=doc["author_id"], text=doc["text"],
                    created_at=doc["created_at"])


def chart_page(docs: list[dict[str, Any]], page: Any) -> ChartPage:
    items, cursor = page.page(docs)
    return ChartPage(items=[chart_read(d) for d in items], next_cursor=cursor)


@router.post("", status_code=201, response_model=ChartRead, summary="Write a chart for a patient in your care")
async def create_chart(body: ChartCreate, me: CurrentPractitioner, store: StoreDep, directory: DirectoryDep,
                       authorization: Authorization) -> ChartRead:
    # identity answers only for patients in the caller's care team, and gives the name we keep for search;
    # if identity cannot answer the directory raises 503 rather than guessing
    patient = await directory.patient(body.patient_id, authorization=authorization)
    if patient is None:
        raise Problem(422, "patient_id is not a patient in your care", invalid_ids=[body.patient_id])
    doc = await store.create_chart(author_id=me.id, patient_id=body.patient_id, patient_name=patient.get("name"),
                                   title=body.title, body=body.body)
    return chart_read(doc)


@router.get("", response_model=ChartPage, summary="Your Charts, newest first")
async def list_own_charts(me: CurrentPrincipal, store: StoreDep, page: PageParams, q: SearchQuery = None) -> ChartPage:
    return chart_page(await store.own_charts(me.id, q=q, page=page), page)


@router.get("/shared-with-me", response_model=ChartPage, summary="Charts Shared With You, newest first")
async def list_shared_charts(me: CurrentPrincipal, store: StoreDep, offices: ViewerOffices, page: PageParams,
                             q: SearchQuery = None) -> ChartPage:
    docs = await store.shared_charts(me.id, practitioner_offices(offices), q=q, page=page)
    return chart_page(docs, page)


@router.get("/{chart_id}", response_model=ChartWithNotes, summary="A chart you can read, with its notes")
async def get_chart(chart: ReadableChart, store: StoreDep) -> ChartWithNotes:
    notes = [note_read(n) for n in await store.notes_of(chart["_id"])]
    return ChartWithNotes(**chart_read(chart).model_dump(), notes=notes)


@router.patch("/{chart_id}", response_model=ChartRead, summary="Edit your own chart")
async def update_chart(body: ChartUpdate, chart: ReadableChart, me: CurrentPrincipal, store: StoreDep) -> ChartRead:
    if chart["author_id"] != me.id:
        raise Problem(403, "only the chart's author edits it")
    changes = body.model_dump(exclude_none=True)
    if not changes:
        return chart_read(chart)
    updated = await store.update_chart(chart, changes)
    if updated is None:
        raise Problem(404, "chart not found")
    return chart_read(updated)


@router.post("/{chart_id}/notes", status_code=201, response_model=NoteRead, summary="Add a note to a chart you can read")
async def add_note(body: NoteCreate, chart: ReadableChart, me: CurrentPrincipal, store: StoreDep) -> NoteRead:
    return note_read(await store.add_note(chart=chart, author_id=me.id, text=body.text))
