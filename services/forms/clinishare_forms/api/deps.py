"""Annotated dependencies: the store, the projection, the caller with their offices, load-or-404."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from clinishare_forms.service import may_administer
from clinishare_forms.store import FormStore
from clinishare_shared.deps import DirectoryDep, ProjectionDep, from_state
from clinishare_shared.auth import CurrentPractitioner
from clinishare_shared.problems import not_found
from clinishare_shared.ids import PathId


StoreDep = Annotated[FormStore, from_state("store")]


@dataclass(frozen=True)
class Caller:
    """A practitioner and the offices they are a practitioner member of now (the projection)."""

    id: str
    offices: frozenset[str]
    authorization: str


async def _caller(principal: CurrentPractitioner, projection: ProjectionDep, request: Request) -> Caller:
    offices = await projection.office_ids_of(principal.id, role="practitioner")
    return Caller(principal.id, frozenset(offices), request.headers.get("authorization", ""))


CurrentCaller = Annotated[Caller, Depends(_caller)]


async def _administered_form(form_id: PathId, caller: CurrentCaller, store: StoreDep,
                             projection: ProjectionDep) -> dict[str, Any]:
    form = await store.form(form_id)
    if form is None or not await may_administer(form=form, projection=projection, viewer_id=caller.id,
                                                      viewer_offices=caller.offices):
        raise not_found("form")
    return form


async def _own_form(form_id: PathId, caller: CurrentCaller, store: StoreDep) -> dict[str, Any]:
    form = await store.form(form_id)
    if form is None or form["author_id"] != caller.id:
        raise not_found("form")
    return form


OwnForm = Annotated[dict[str, Any], Depends(_own_form)]


AdministeredForm = Annotated[dict[str, Any], Depends(_administered_form)]
"""A form the caller authored or that is shared with them now; anything else is 404."""
