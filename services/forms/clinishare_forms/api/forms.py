"""Form definitions and their sharing options: create, list, read, edit (author only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from clinishare_forms import service
from clinishare_forms.api.deps import AdministeredForm, CurrentCaller, DirectoryDep, OwnForm, ProjectionDep, StoreDep
from clinishare_forms.domain.schemas import FormCreate, FormRead, FormUpdate
from clinishare_forms.domain.stored import FormDoc
from clinishare_shared.access import AccessList, access_list, named_recipients
from clinishare_shared.etag import IfMatch, tag
from clinishare_shared.ids import PathId
from clinishare_shared.pagination import Page, PageParams
from clinishare_shared.projection import IdentityProjection

router = APIRouter(prefix="/v1/forms", tags=["forms"])


async def form_read(form: FormDoc, viewer_id: str, projection: IdentityProjection) -> FormRead:
    """Names are read now, from the projection; only the author sees the recipients."""
    author_name = (await projection.names([form["author_id"]])).get(form["author_id"])
    recipients = await named_recipients(projection, practitioner_ids=form["sharing"]["practitioner_ids"],
                                        office_ids=form["sharing"]["office_ids"]) \
        if form["author_id"] == viewer_id else []
    return FormRead.from_doc(form, viewer_id=viewer_id, author_name=author_name, recipients=recipients)


@router.post("", status_code=201, response_model=FormRead, summary="Build a form")
async def create_form(body: FormCreate, caller: CurrentCaller, store: StoreDep, projection: ProjectionDep,
                      directory: DirectoryDep) -> FormRead:
    form = await service.create_form(store=store, projection=projection, directory=directory, caller=caller,
                                     title=body.title, fields=body.fields, sharing=body.sharing)
    return await form_read(form, caller.id, projection)


@router.get("", response_model=Page[FormRead], summary="My forms and the forms shared with me")
async def list_forms(caller: CurrentCaller, store: StoreDep, projection: ProjectionDep,
                     params: PageParams) -> Page[FormRead]:
    docs, cursor = await service.visible_forms(store=store, projection=projection, caller=caller, params=params)
    return Page[FormRead](items=[await form_read(d, caller.id, projection) for d in docs], next_cursor=cursor)


@router.get("/{form_id}", response_model=FormRead, summary="A form I authored or that is shared with me")
async def get_form(form: AdministeredForm, caller: CurrentCaller, projection: ProjectionDep,
                   response: Response) -> FormRead:
    tag(response, service.form_etag(form))
    return await form_read(form, caller.id, projection)


@router.patch("/{form_id}", response_model=FormRead, summary="Edit a form (its author only)")
async def update_form(form_id: PathId, body: FormUpdate, caller: CurrentCaller, store: StoreDep,
                      projection: ProjectionDep, directory: DirectoryDep, response: Response,
                      if_match: IfMatch = None) -> FormRead:
    form = await service.update_form(store=store, projection=projection, directory=directory, caller=caller,
                                     form_id=form_id, title=body.title, fields=body.fields, sharing=body.sharing,
                                     if_match=if_match)
    tag(response, service.form_etag(form))
    return await form_read(form, caller.id, projection)


@router.get("/{form_id}/access", response_model=AccessList,
            summary="Who can use this form now (practitioners it is shared with), and through what (author only)")
async def form_access(form: OwnForm, projection: ProjectionDep) -> AccessList:
    return await access_list(await service.administrators(form=form, projection=projection), projection)
