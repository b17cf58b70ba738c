"""Annotated dependencies: the store, the projection, the caller with their offices, load-or-404."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from clinishare_forms import service
from clinishare_forms.domain.stored import FormDoc
from clinishare_forms.service import Caller
from clinishare_forms.store import FormStore
from clinishare_shared.auth import CurrentPractitioner
from clinishare_shared.deps import AuthorizationHeader, DirectoryDep, ProjectionDep, from_state
from clinishare_shared.ids import PathId

__all__ = ["AdministeredForm", "Caller", "CurrentCaller", "DirectoryDep", "OwnForm", "ProjectionDep", "StoreDep"]

StoreDep = Annotated[FormStore, from_state("store")]


async def _caller(principal: CurrentPractitioner, projection: ProjectionDep,
                  authorization: AuthorizationHeader) -> Caller:
    offices = await projection.office_ids_of(principal.id, role="practitioner")
    return Caller(principal.id, frozenset(offices), authorization)


CurrentCaller = Annotated[Caller, Depends(_caller)]


async def _administered_form(form_id: PathId, caller: CurrentCaller, store: StoreDep,
                             projection: ProjectionDep) -> FormDoc:
    return await service.administered_form(store=store, projection=projection, form_id=form_id, caller=caller)


async def _own_form(form_id: PathId, caller: CurrentCaller, store: StoreDep) -> FormDoc:
    return await service.own_form(store=store, form_id=form_id, author_id=caller.id)


AdministeredForm = Annotated[FormDoc, Depends(_administered_form)]
"""A form the caller authored or that is shared with them now; anything else is 404."""
OwnForm = Annotated[FormDoc, Depends(_own_form)]
