"""Form definitions and their sharing options: create, list, read, edit (author only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from clinishare_forms.api.deps import (
    AdministeredForm, CurrentCaller, DirectoryDep, OwnForm, ProjectionDep, StoreDep, Caller,
)
from clinishare_forms.domain.access import SharingRule, added_recipients, who_can_administer
from clinishare_forms.domain.schemas import FormCreate, FormRead, FormUpdate, SharingOptions
from clinishare_shared.mongo import now_ms as now
from clinishare_forms.events import form_created, form_shared, form_updated
from clinishare_forms.service import live_rule, may_administer
from clinishare_shared.access import AccessList, access_list, named_recipients
from clinishare_shared.etag import IfMatch, check_if_match, entity_tag, precondition_failed, tag
from clinishare_shared.directory import Directory, refused_recipients
from clinishare_shared.mongo import new_id
from clinishare_shared.pagination import Page, PageParams
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.projection import IdentityProjection
from clinishare_shared.ids import PathId

router = APIRouter(prefix="/v1/forms", tags=["forms"])


async def form_read(form: dict[str, Any], viewer_id: str, projection: IdentityProjection) -> FormRead:
    """Names are read now, from the projection; only the author sees the recipients."""
    mine = form["author_id"] == viewer_id
    author_name = (await projection.names([form["author_id"]])).get(form["author_id"])
    recipients = await named_recipients(projection, practitioner_ids=form["sharing"]["practitioner_ids"],
                                        office_ids=form["sharing"]["office_ids"]) if mine else []
    return FormRead(
        id=form["_id"], title=form["title"], fields=form["fields"], sharing=form["sharing"],
        version=form["version"], author_id=form["author_id"], author_name=author_name,
        sharer_name=None if mine else author_name, recipients=recipients, can_edit=mine,
        created_at=form["created_at"], updated_at=form["updated_at"],
    )


async def check_recipients(sharing: SharingOptions, caller: Caller, projection: IdentityProjection,
                           directory: Directory) -> None:
    bad = await refused_recipients(projection, directory, account_id=caller.id,
                                   authorization=caller.authorization,
                                   practitioner_ids=sharing.practitioner_ids, office_ids=sharing.office_ids)
    if bad:
        raise Problem(422, "recipients must be on your sharing list", invalid_ids=bad)


@router.post("", status_code=201, response_model=FormRead, summary="Build a form")
async def create_form(body: FormCreate, caller: CurrentCaller, store: StoreDep, projection: ProjectionDep,
                      directory: DirectoryDep) -> FormRead:
    await check_recipients(body.sharing, caller, projection, directory)
    at = now()
    fields = [f.model_dump() for f in body.fields]
    form = {
        "_id": new_id(), "author_id": caller.id, "title": body.title, "fields": fields,
        "sharing": body.sharing.model_dump(), "version": 1, "revision": 0,
        "versions": [{"version": 1, "title": body.title, "fields": fields, "created_at": at}],
        "created_at": at, "updated_at": at,
    }
    added_p, added_o = added_recipients(None, SharingRule.of(form["sharing"]))
    events = [form_created(form)]
    if added_p or added_o:
        events.append(form_shared(form, added_practitioner_ids=added_p, added_office_ids=added_o))
    await store.insert_form(form, *events)
    return await form_read(form, caller.id, projection)


@router.get("", response_model=Page[FormRead], summary="My forms and the forms shared with me")
async def list_forms(caller: CurrentCaller, store: StoreDep, projection: ProjectionDep,
                     params: PageParams) -> Page[FormRead]:
    docs, cursor = params.page(await store.visible_forms(caller.id, caller.offices, params))
    # the query finds forms naming the caller; the live rule drops those whose author no longer has the
    # caller (or the caller's office) on their sharing list
    docs = [d for d in docs if await may_administer(form=d, projection=projection, viewer_id=caller.id,
                                                    viewer_offices=caller.offices)]
    return Page[FormRead](items=[await form_read(d, caller.id, projection) for d in docs], next_cursor=cursor)


@router.get("/{form_id}", response_model=FormRead, summary="A form I authored or that is shared with me")
async def get_form(form: AdministeredForm, caller: CurrentCaller, projection: ProjectionDep,
                   response: Response) -> FormRead:
    tag(response, form_etag(form))
    return await form_read(form, caller.id, projection)


def form_etag(form: dict[str, Any]) -> str:
    """Changes with every write of the form (its revision counts them)."""
    return entity_tag(form["_id"], form.get("revision", 0))


@router.patch("/{form_id}", response_model=FormRead, summary="Edit a form (its author only)")
async def update_form(form_id: PathId, body: FormUpdate, caller: CurrentCaller, store: StoreDep,
                      projection: ProjectionDep, directory: DirectoryDep, response: Response,
                      if_match: IfMatch = None) -> FormRead:
    form = await store.form(form_id)
    if form is None:
        raise not_found("form")
    if form["author_id"] != caller.id:
        if await may_administer(form=form, projection=projection, viewer_id=caller.id,
                                viewer_offices=caller.offices):
            raise Problem(403, "only the form's author can edit it")
        raise not_found("form")
    check_if_match(if_match, form_etag(form))

    at = now()
    changes: dict[str, Any] = {}
    new_version = None
    events = []
    title = body.title if body.title is not None else form["title"]
    fields = [f.model_dump() for f in body.fields] if body.fields is not None else form["fields"]
    if title != form["title"] or fields != form["fields"]:
        # assignments keep the version they were given; the new one is for later assignments
        version = form["version"] + 1
        new_version = {"version": version, "title": title, "fields": fields, "created_at": at}
        changes.update(title=title, fields=fields, version=version)
    if body.sharing is not None and body.sharing.model_dump() != form["sharing"]:
        await check_recipients(body.sharing, caller, projection, directory)
        sharing = body.sharing.model_dump()
        added_p, added_o = added_recipients(SharingRule.of(form["sharing"]), SharingRule.of(sharing))
        changes["sharing"] = sharing
        events.append(form_shared({**form, "sharing": sharing}, added_practitioner_ids=added_p,
                                  added_office_ids=added_o))
    if not changes:
        tag(response, form_etag(form))
        return await form_read(form, caller.id, projection)
    events.insert(0, form_updated(form, changes))
    changes["updated_at"] = at
    updated = await store.update_form(form_id, revision=form.get("revision", 0), changes=changes,
                                      new_version=new_version, events=events)
    if updated is None:
        if if_match is not None:
            raise precondition_failed()
        raise Problem(409, "the form was changed meanwhile; reload it and try again")
    tag(response, form_etag(updated))
    return await form_read(updated, caller.id, projection)


@router.get("/{form_id}/access", response_model=AccessList,
            summary="Who can use this form now (practitioners it is shared with), and through what (author only)")
async def form_access(form: OwnForm, projection: ProjectionDep) -> AccessList:
    rule = await live_rule(form=form, projection=projection)
    readers = who_can_administer(rule, form_id=form["_id"], author_id=form["author_id"],
                                 rosters=await projection.office_rosters(rule.office_ids),
                                 via=await projection.sharing_list(form["author_id"]))
    return await access_list(readers, projection)
