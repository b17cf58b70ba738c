"""Reading submissions, as a page or as CSV: only those ``domain.access.may_see_submission`` allows. Each
submission shown to someone other than the practitioner who assigned it is recorded for audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from clinishare_forms.api.assignments import submission_read
from clinishare_forms.api.deps import Caller, CurrentCaller, ProjectionDep, StoreDep
from clinishare_forms.domain.access import SharingRule, may_see_submission
from clinishare_forms.domain.export import columns, csv_line, record
from clinishare_forms.domain.schemas import SubmissionRead
from clinishare_forms.store import FormStore
from clinishare_forms.service import live_rule, may_administer
from clinishare_shared.pagination import Page, PageParams
from clinishare_shared.problems import not_found
from clinishare_shared.ids import PathId
from clinishare_shared.projection import IdentityProjection

router = APIRouter(prefix="/v1/forms", tags=["submissions"])


class Scope:
    """Which submissions of a form the caller sees: all of them, or only those of assignments they made."""

    def __init__(self, form: dict[str, Any], caller: Caller, rule: SharingRule) -> None:
        self.form = form
        self.caller = caller
        self.rule = rule  # the live rule: recipients still on the author's sharing list
        self.sees_others = may_see_submission(self.rule, author_id=form["author_id"], assigned_by=None,
                                              viewer_id=caller.id, viewer_offices=caller.offices)
        self.only_assigned_by = None if self.sees_others else caller.id

    async def record(self, store: FormStore, assignment: dict[str, Any]) -> None:
        """A submission read by someone other than the practitioner who asked for it (its owner here) is
        accounted for: an access-log entry and its ``forms.submission.accessed`` event, in one insert."""
        if assignment["practitioner_id"] != self.caller.id:
            through_share = self.caller.id != self.form["author_id"]
            await store.record_access(assignment=assignment, accessor_id=self.caller.id,
                                      grant_ids=[self.form["_id"]] if through_share else [])

    def allows(self, assignment: dict[str, Any]) -> bool:
        return may_see_submission(self.rule, author_id=self.form["author_id"],
                                  assigned_by=assignment["practitioner_id"], viewer_id=self.caller.id,
                                  viewer_offices=self.caller.offices)


async def _scope(form_id: str, caller: Caller, store: FormStore, projection: IdentityProjection) -> Scope:
    form = await store.form(form_id)
    # Whoever assigned the form always sees those submissions, even after the author withdrew the share.
    if form is None or not (await may_administer(form=form, projection=projection, viewer_id=caller.id,
                                                 viewer_offices=caller.offices)
                            or await store.has_assigned(form_id, caller.id)):
        raise not_found("form")
    return Scope(form, caller, await live_rule(form=form, projection=projection))


@router.get("/{form_id}/submissions", response_model=Page[SubmissionRead], summary="Submissions I may see")
async def list_submissions(form_id: PathId, caller: CurrentCaller, store: StoreDep, projection: ProjectionDep,
                           params: PageParams) -> Page[SubmissionRead]:
    scope = await _scope(form_id, caller, store, projection)
    docs, cursor = params.page(await store.submissions(form_id, only_assigned_by=scope.only_assigned_by,
                                                       params=params))
    shown = [d for d in docs if scope.allows(d)]
    for doc in shown:
        await scope.record(store, doc)
    return Page[SubmissionRead](items=[submission_read(d) for d in shown], next_cursor=cursor)


@router.get("/{form_id}/submissions.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}}, summary="Submissions I may see, as CSV")
async def export_submissions(form_id: PathId, caller: CurrentCaller, store: StoreDep,
                             projection: ProjectionDep) -> StreamingResponse:
    scope = await _scope(form_id, caller, store, projection)
    header = columns(await store.form_versions(form_id))

    async def body() -> AsyncIterator[str]:
        yield csv_line(header)
        async for doc in store.iter_submissions(form_id, only_assigned_by=scope.only_assigned_by):
            if scope.allows(doc):
                await scope.record(store, doc)
                s = doc["submission"]
                yield csv_line(record(header, {"answers": s["answers"], "submitted_at": s["submitted_at"],
                                               "patient_id": doc["patient_id"],
                                               "practitioner_id": doc["practitioner_id"]}))

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="form-{form_id}-submissions.csv"'})
