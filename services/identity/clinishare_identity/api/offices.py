"""Offices: create, read (members only), add and remove members, rotate the office Share PIN."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Response

from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.mongo import new_id
from clinishare_shared.problems import Problem
from clinishare_shared.ids import PathId
from clinishare_identity.api.deps import MemberOffice, OwnedOffice, StoreDep
from clinishare_identity.domain.models import (
    MemberAdd, MemberPublic, OfficeCreate, OfficePublic, PinPublic, normalise_email, role_fits,
)
from clinishare_identity.domain.pins import format_pin
from clinishare_identity.store import DuplicateKeyError, IdentityStore
from clinishare_identity.service import fresh_pin

router = APIRouter(prefix="/v1/offices", tags=["offices"])
log = structlog.get_logger("clinishare.identity.offices")
CANNOT_ADD = "no account with this e-mail address can be added in this role"
RETRIES = 5  # version conflicts: re-read and decide again


async def office_public(store: IdentityStore, office: dict[str, Any]) -> OfficePublic:
    accounts = await store.accounts_by_id(m["account_id"] for m in office["members"])
    members = [MemberPublic(account_id=m["account_id"], name=accounts[m["account_id"]]["name"],
                            email=accounts[m["account_id"]]["email"], role=m["role"])
               for m in office["members"] if m["account_id"] in accounts]
    return OfficePublic(id=office["_id"], name=office["name"], owner_id=office["owner_id"],
                        share_pin=format_pin(office["share_pin"]), members=members, created_at=office["created_at"])


@router.post("", status_code=201, response_model=OfficePublic, summary="Create an office (I become its owner)")
async def create_office(body: OfficeCreate, principal: CurrentPractitioner, store: StoreDep) -> OfficePublic:
    office = {
        "_id": new_id(), "name": body.name, "owner_id": principal.id, "share_pin": await fresh_pin(store=store),
        "members": [{"account_id": principal.id, "role": "practitioner"}], "version": 1, "created_at": store.now(),
    }
    await store.insert_office(office)
    log.info("office_created", office_id=office["_id"], owner_id=principal.id)
    return await office_public(store, office)


@router.get("/{office_id}", response_model=OfficePublic, summary="An office I am a member of")
async def get_office(office: MemberOffice, store: StoreDep) -> OfficePublic:
    return await office_public(store, office)


@router.post("/{office_id}/members", status_code=201, response_model=OfficePublic, summary="Add a member (owner)")
async def add_member(office_id: PathId, body: MemberAdd, office: OwnedOffice, store: StoreDep) -> OfficePublic:
    account = await store.account_by_email(normalise_email(body.email))
    if account is None or not role_fits(account["kind"], body.role):
        # one answer for both: telling them apart would tell any practitioner which e-mails are patients'
        raise Problem(422, CANNOT_ADD)
    for _ in range(RETRIES):
        if any(m["account_id"] == account["_id"] for m in office["members"]):
            raise Problem(409, "this account is already a member")
        members = [*office["members"], {"account_id": account["_id"], "role": body.role}]
        written = await store.change_members(office, members, added=account["_id"])
        if written is not None:
            log.info("office_member_added", office_id=office_id, account_id=account["_id"], role=body.role)
            return await office_public(store, written)
        office = await store.office(office_id) or office
    raise Problem(409, "the office changed at the same time; try again")


@router.delete("/{office_id}/members/{account_id}", status_code=204,
               summary="Remove a member (owner), or leave the office (any member but the owner)")
async def remove_member(office_id: PathId, account_id: PathId, office: MemberOffice, principal: CurrentPrincipal,
                        store: StoreDep) -> Response:
    if account_id != principal.id and office["owner_id"] != principal.id:
        raise Problem(403, "only the office owner may remove other members")
    if account_id == office["owner_id"]:
        raise Problem(409, "the owner cannot leave their own office")
    for _ in range(RETRIES):
        if not any(m["account_id"] == account_id for m in office["members"]):
            raise Problem(404, "not a member of this office")
        members = [m for m in office["members"] if m["account_id"] != account_id]
        if await store.change_members(office, members, removed=account_id) is not None:
            log.info("office_member_removed", office_id=office_id, account_id=account_id, by=principal.id)
            return Response(status_code=204)
        office = await store.office(office_id) or office
    raise Problem(409, "the office changed at the same time; try again")


@router.post("/{office_id}/share-pin/rotate", response_model=PinPublic, summary="Replace the office Share PIN")
async def rotate_office_pin(office: OwnedOffice, principal: CurrentPrincipal, store: StoreDep) -> PinPublic:
    for _ in range(3):
        pin = await fresh_pin(store=store)
        try:
            await store.set_office_pin(office["_id"], pin, rotated_by=principal.id)
        except DuplicateKeyError:
            continue
        log.info("share_pin_rotated", holder_kind="office", holder_id=office["_id"], by=principal.id)
        return PinPublic(pin=format_pin(pin))
    raise Problem(503, "could not rotate the PIN; try again")
