"""Patients and care teams, portal invites, and portal activation.

A patient record is visible to its care team (and to the patient's own portal account) and to nobody
else: for anyone else it does not exist (404). Other services call ``GET /v1/patients/{id}`` with the
caller's token to learn exactly that.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.ids import PathId
from clinishare_shared.pagination import Page, PageParams
from clinishare_identity import service
from clinishare_identity.api.deps import PasswordsDep, PatientInMyCare, SettingsDep, StoreDep
from clinishare_identity.domain.stored import PatientDoc
from clinishare_identity.domain.models import (
    AccountRead, CareTeamAdd, InviteRead, PatientCreate, PatientRead, PortalActivate,
)
from clinishare_identity.store import IdentityStore

router = APIRouter(tags=["patients"])


async def _reads(store: IdentityStore, docs: list[PatientDoc]) -> list[PatientRead]:
    with_portal = await service.with_portal_account(store=store, patients=docs)
    return [PatientRead.from_doc(d, has_portal_account=d["_id"] in with_portal) for d in docs]


@router.post("/v1/patients", status_code=201, response_model=PatientRead, summary="Register a patient")
async def register_patient(body: PatientCreate, principal: CurrentPractitioner, store: StoreDep) -> PatientRead:
    patient = await service.register_patient(store=store, practitioner_id=principal.id, name=body.name,
                                             email=body.email, date_of_birth=body.date_of_birth)
    return (await _reads(store, [patient]))[0]


@router.get("/v1/patients", response_model=Page[PatientRead], summary="Patients in my care, newest first")
async def list_patients(principal: CurrentPractitioner, store: StoreDep, page: PageParams,
                        q: Annotated[str | None, Query(max_length=200)] = None) -> Page[PatientRead]:
    docs, cursor = page.page(await store.list_patients(principal.id, q.strip() if q else None, page))
    return Page[PatientRead](items=await _reads(store, docs), next_cursor=cursor)


@router.get("/v1/patients/{patient_id}", response_model=PatientRead, summary="A patient in my care")
async def get_patient(patient_id: PathId, principal: CurrentPrincipal, store: StoreDep) -> PatientRead:
    patient = await service.visible_patient(store=store, patient_id=patient_id, viewer_id=principal.id,
                                            viewer_kind=principal.kind)
    return (await _reads(store, [patient]))[0]


@router.post("/v1/patients/{patient_id}/care-team", response_model=PatientRead,
             summary="Add a practitioner from my sharing list to the care team")
async def add_to_care_team(patient_id: PathId, body: CareTeamAdd, patient: PatientInMyCare,
                           principal: CurrentPractitioner, store: StoreDep) -> PatientRead:
    written = await service.add_to_care_team(store=store, patient=patient, practitioner_id=body.practitioner_id,
                                             added_by=principal.id)
    return (await _reads(store, [written]))[0]


@router.delete("/v1/patients/{patient_id}/care-team/{practitioner_id}", status_code=204,
               summary="Remove a practitioner (or myself) from the care team; the last member stays (409)")
async def remove_from_care_team(patient_id: PathId, practitioner_id: PathId, patient: PatientInMyCare,
                                principal: CurrentPractitioner, store: StoreDep) -> Response:
    await service.remove_from_care_team(store=store, patient=patient, practitioner_id=practitioner_id,
                                        removed_by=principal.id)
    return Response(status_code=204)


@router.post("/v1/patients/{patient_id}/portal-invite", status_code=201, response_model=InviteRead,
             summary="Create a portal invite (replaces any earlier one)")
async def portal_invite(patient: PatientInMyCare, principal: CurrentPractitioner, store: StoreDep,
                        settings: SettingsDep) -> InviteRead:
    invite = await service.invite_to_portal(store=store, patient=patient, invited_by=principal.id,
                                            ttl_seconds=settings.invite_ttl_seconds)
    return InviteRead(invite_token=invite.token, expires_at=invite.doc["expires_at"])


@router.post("/v1/portal/activate", status_code=201, response_model=AccountRead, tags=["portal"],
             summary="Redeem a portal invite: the patient's own account")
async def activate(body: PortalActivate, store: StoreDep, passwords: PasswordsDep) -> AccountRead:
    account = await service.activate_portal(store=store, passwords=passwords, invite_token=body.invite_token,
                                            password=body.password)
    return AccountRead.from_doc(account)
