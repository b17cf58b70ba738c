"""Offices: create, read (members only), add and remove members, rotate the office Share PIN."""

from __future__ import annotations

from fastapi import APIRouter, Response

from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.ids import PathId
from clinishare_identity import service
from clinishare_identity.api.deps import MemberOffice, OwnedOffice, StoreDep
from clinishare_identity.domain.stored import OfficeDoc
from clinishare_identity.domain.models import MemberAdd, OfficeCreate, OfficeRead, PinRead
from clinishare_identity.store import IdentityStore

router = APIRouter(prefix="/v1/offices", tags=["offices"])


async def _read(store: IdentityStore, office: OfficeDoc) -> OfficeRead:
    return OfficeRead.from_doc(office, await service.member_accounts(store=store, office=office))


@router.post("", status_code=201, response_model=OfficeRead, summary="Create an office (I become its owner)")
async def create_office(body: OfficeCreate, principal: CurrentPractitioner, store: StoreDep) -> OfficeRead:
    return await _read(store, await service.create_office(store=store, owner_id=principal.id, name=body.name))


@router.get("/{office_id}", response_model=OfficeRead, summary="An office I am a member of")
async def get_office(office: MemberOffice, store: StoreDep) -> OfficeRead:
    return await _read(store, office)


@router.post("/{office_id}/members", status_code=201, response_model=OfficeRead, summary="Add a member (owner)")
async def add_member(office_id: PathId, body: MemberAdd, office: OwnedOffice, store: StoreDep) -> OfficeRead:
    return await _read(store, await service.add_member(store=store, office=office, email=body.email, role=body.role))


@router.delete("/{office_id}/members/{account_id}", status_code=204,
               summary="Remove a member (owner), or leave the office (any member but the owner)")
async def remove_member(office_id: PathId, account_id: PathId, office: MemberOffice, principal: CurrentPrincipal,
                        store: StoreDep) -> Response:
    await service.remove_member(store=store, office=office, actor_id=principal.id, account_id=account_id)
    return Response(status_code=204)


@router.post("/{office_id}/share-pin/rotate", response_model=PinRead, summary="Replace the office Share PIN")
async def rotate_office_pin(office: OwnedOffice, principal: CurrentPrincipal, store: StoreDep) -> PinRead:
    return PinRead.of(await service.rotate_office_pin(store=store, office=office, rotated_by=principal.id))
