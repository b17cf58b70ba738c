"""Patients and care teams, portal invites, and portal activation.

A patient record is visible to its care team (and to the patient's own portal account) and to nobody
else: for anyone else it does not exist (404). Other services call ``GET /v1/patients/{id}`` with the
caller's token to learn exactly that.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, Response

from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.mongo import new_id
from clinishare_shared.pagination import Page, PageParams
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.ids import PathId
from clinishare_identity.api.accounts import account_public, check_password
from clinishare_identity.api.deps import PasswordsDep, SettingsDep, StoreDep
from clinishare_identity.domain.models import (
    AccountPublic, CareTeamAdd, InvitePublic, PatientCreate, PatientPublic, PortalActivate, normalise_email,
)
from clinishare_identity.store import DuplicateKeyError, IdentityStore
from clinishare_identity.service import sharing_list_of

router = APIRouter(tags=["patients"])
log = structlog.get_logger("clinishare.identity.patients")
RETRIES = 5


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def patients_public(store: IdentityStore, docs: list[dict[str, Any]]) -> list[PatientPublic]:
    with_portal = await store.portal_account_ids(d["_id"] for d in docs)
    return [PatientPublic(id=d["_id"], name=d["name"], email=d["email"],
                          date_of_birth=date.fromisoformat(d["date_of_birth"]) if d.get("date_of_birth") else None,
                          care_team=d["care_team"], has_portal_account=d["_id"] in with_portal,
                          created_at=d["created_at"]) for d in docs]


async def _patient_in_my_care(patient_id: PathId, principal: CurrentPractitioner, store: StoreDep) -> dict[str, Any]:
    patient = await store.patient(patient_id)
    if patient is None or principal.id not in patient["care_team"]:
        raise not_found("patient")
    return patient


PatientInMyCare = Annotated[dict[str, Any], Depends(_patient_in_my_care)]


@router.post("/v1/patients", status_code=201, response_model=PatientPublic, summary="Register a patient")
async def register_patient(body: PatientCreate, principal: CurrentPractitioner, store: StoreDep) -> PatientPublic:
    patient = {
        "_id": new_id(), "name": body.name, "email": body.email, "email_norm": normalise_email(body.email),
        "date_of_birth": body.date_of_birth.isoformat() if body.date_of_birth else None,
        "care_team": [principal.id], "version": 1, "registered_by": principal.id, "created_at": store.now(),
    }
    await store.insert_patient(patient)
    log.info("patient_registered", patient_id=patient["_id"], registered_by=principal.id)
    return (await patients_public(store, [patient]))[0]


@router.get("/v1/patients", response_model=Page[PatientPublic], summary="Patients in my care, newest first")
async def list_patients(principal: CurrentPractitioner, store: StoreDep, page: PageParams,
                        q: Annotated[str | None, Query(max_length=200)] = None) -> Page[PatientPublic]:
    docs, cursor = page.page(await store.list_patients(principal.id, q.strip() if q else None, page))
    return Page(items=await patients_public(store, docs), next_cursor=cursor)


@router.get("/v1/patients/{patient_id}", response_model=PatientPublic, summary="A patient in my care")
async def get_patient(patient_id: PathId, principal: CurrentPrincipal, store: StoreDep) -> PatientPublic:
    patient = await store.patient(patient_id)
    visible = patient is not None and (
        principal.id in patient["care_team"] or (principal.kind == "patient" and principal.id == patient_id))
    if not visible:
        raise not_found("patient")
    return (await patients_public(store, [patient]))[0]  # type: ignore[list-item]


@router.post("/v1/patients/{patient_id}/care-team", response_model=PatientPublic,
             summary="Add a practitioner from my sharing list to the care team")
async def add_to_care_team(patient_id: PathId, body: CareTeamAdd, patient: PatientInMyCare,
                           principal: CurrentPractitioner, store: StoreDep) -> PatientPublic:
    if body.practitioner_id in patient["care_team"]:
        raise Problem(409, "already in the care team")
    refused = (await sharing_list_of(store=store, account_id=principal.id)).refused(practitioner_ids=[body.practitioner_id])
    if refused:
        raise Problem(422, "only practitioners on your sharing list can join the care team", invalid_ids=refused)
    for _ in range(RETRIES):
        written = await store.add_to_care_team(patient, body.practitioner_id, principal.id)
        if written is not None:
            log.info("care_team_changed", patient_id=patient_id, added=body.practitioner_id, by=principal.id)
            return (await patients_public(store, [written]))[0]
        patient = await store.patient(patient_id) or patient
        if body.practitioner_id in patient["care_team"]:
            raise Problem(409, "already in the care team")
    raise Problem(409, "the care team changed at the same time; try again")


@router.delete("/v1/patients/{patient_id}/care-team/{practitioner_id}", status_code=204,
               summary="Remove a practitioner (or myself) from the care team; the last member stays (409)")
async def remove_from_care_team(patient_id: PathId, practitioner_id: PathId, patient: PatientInMyCare,
                                principal: CurrentPractitioner, store: StoreDep) -> Response:
    for _ in range(RETRIES):
        if practitioner_id not in patient["care_team"]:
            raise not_found("care-team member")
        if patient["care_team"] == [practitioner_id]:
            raise Problem(409, "the last member of a care team cannot leave it")
        if await store.remove_from_care_team(patient, practitioner_id, principal.id) is not None:
            log.info("care_team_changed", patient_id=patient_id, removed=practitioner_id, by=principal.id)
            return Response(status_code=204)
        patient = await store.patient(patient_id) or patient
        if principal.id not in patient["care_team"]:
            raise not_found("patient")
    raise Problem(409, "the care team changed at the same time; try again")


@router.post("/v1/patients/{patient_id}/portal-invite", status_code=201, response_model=InvitePublic,
             summary="Create a portal invite (replaces any earlier one)")
async def portal_invite(patient: PatientInMyCare, principal: CurrentPractitioner, store: StoreDep,
                        settings: SettingsDep) -> InvitePublic:
    token = secrets.token_urlsafe(32)  # 256 bits; only its hash is stored
    expires_at = store.now() + timedelta(seconds=settings.invite_ttl_seconds)
    await store.set_invite(patient["_id"], _hash_token(token), expires_at, principal.id)
    log.info("portal_invite_created", patient_id=patient["_id"], by=principal.id)
    return InvitePublic(invite_token=token, expires_at=expires_at)


@router.post("/v1/portal/activate", status_code=201, response_model=AccountPublic, tags=["portal"],
             summary="Redeem a portal invite: the patient's own account")
async def activate(body: PortalActivate, store: StoreDep, passwords: PasswordsDep) -> AccountPublic:
    token_hash = _hash_token(body.invite_token)
    patient = await store.patient_by_invite(token_hash)
    invalid = Problem(422, "this invite is unknown, expired or already used")
    if patient is None:
        raise invalid
    invite = patient["invite"]
    expires_at = invite["expires_at"]
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=store.now().tzinfo)
    if expires_at <= store.now():
        raise invalid
    check_password(body.password, patient["email"])
    if await store.account(patient["_id"]) is not None:
        raise Problem(409, "this patient already has a portal account")
    if await store.account_by_email(patient["email_norm"]) is not None:
        raise Problem(409, "another account already uses this patient's e-mail address")
    account = {"_id": patient["_id"], "email": patient["email"], "email_norm": patient["email_norm"],
               "name": patient["name"], "kind": "patient", "password_hash": await passwords.hash(body.password),
               "created_at": store.now()}
    if not await store.consume_invite(patient["_id"], token_hash):
        raise invalid  # redeemed (or replaced) concurrently
    try:
        await store.insert_account(account)
    except DuplicateKeyError:
        await store.restore_invite(patient["_id"], invite)
        raise Problem(409, "this patient already has a portal account") from None
    log.info("portal_account_activated", patient_id=patient["_id"])
    return account_public(account)
