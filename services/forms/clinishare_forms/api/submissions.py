"""Reading submissions, as a page or as CSV: only those ``domain.access.may_see_submission`` allows. Each
submission shown to someone other than the practitioner who assigned it is recorded for audit."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from clinishare_forms import service
from clinishare_forms.api.deps import CurrentCaller, ProjectionDep, StoreDep
from clinishare_forms.domain.export import columns, csv_line, record
from clinishare_forms.domain.schemas import SubmissionRead
from clinishare_shared.ids import PathId
from clinishare_shared.pagination import Page, PageParams

router = APIRouter(prefix="/v1/forms", tags=["submissions"])


@router.get("/{form_id}/submissions", response_model=Page[SubmissionRead], summary="Submissions I may see")
async def list_submissions(form_id: PathId, caller: CurrentCaller, store: StoreDep, projection: ProjectionDep,
                           params: PageParams) -> Page[SubmissionRead]:
    scope = await service.submission_scope(store=store, projection=projection, form_id=form_id, caller=caller)
    shown, cursor = await service.submissions(store=store, scope=scope, params=params)
    return Page[SubmissionRead](items=[SubmissionRead.from_doc(d) for d in shown], next_cursor=cursor)


@router.get("/{form_id}/submissions.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}}, summary="Submissions I may see, as CSV")
async def export_submissions(form_id: PathId, caller: CurrentCaller, store: StoreDep,
                             projection: ProjectionDep) -> StreamingResponse:
    scope = await service.submission_scope(store=store, projection=projection, form_id=form_id, caller=caller)
    header = columns(await store.form_versions(form_id))

    async def body() -> AsyncIterator[str]:
        yield csv_line(header)
        async for doc in service.export_submissions(store=store, scope=scope):
            submission = SubmissionRead.from_doc(doc)
            yield csv_line(record(header, submission.model_dump()))

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="form-{form_id}-submissions.csv"'})
