"""Annotated dependencies: the store, settings, the password hasher, and load-or-404 for offices and
patients."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from clinishare_shared.deps import from_state
from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal, TokenSigner
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.ids import PathId
from clinishare_identity.domain.access import is_member
from clinishare_identity.domain.stored import AccountDoc, OfficeDoc, PatientDoc
from clinishare_identity.passwords import Passwords
from clinishare_identity.settings import IdentitySettings
from clinishare_identity.store import IdentityStore


StoreDep = Annotated[IdentityStore, from_state("store")]
SettingsDep = Annotated[IdentitySettings, from_state("settings")]
PasswordsDep = Annotated[Passwords, from_state("passwords")]
SignerDep = Annotated[TokenSigner, from_state("signer")]


async def _current_account(principal: CurrentPrincipal, store: StoreDep) -> AccountDoc:
    account = await store.account(principal.id)
    if account is None:
        # a validly signed token for an account that is not here: treat it like a bad token
        raise Problem(401, "unknown account", headers={"WWW-Authenticate": "Bearer"})
    return account


CurrentAccount = Annotated[AccountDoc, Depends(_current_account)]


async def _member_office(office_id: PathId, principal: CurrentPrincipal, store: StoreDep) -> OfficeDoc:
    office = await store.office(office_id)
    if office is None or not is_member(office, principal.id):
        raise not_found("office")
    return office


MemberOffice = Annotated[OfficeDoc, Depends(_member_office)]


async def _owned_office(office: MemberOffice, principal: CurrentPrincipal) -> OfficeDoc:
    if office["owner_id"] != principal.id:
        raise Problem(403, "only the office owner may do this")
    return office


OwnedOffice = Annotated[OfficeDoc, Depends(_owned_office)]


async def _patient_in_my_care(patient_id: PathId, principal: CurrentPractitioner, store: StoreDep) -> PatientDoc:
    patient = await store.patient(patient_id)
    if patient is None or principal.id not in patient["care_team"]:
        raise not_found("patient")
    return patient


PatientInMyCare = Annotated[PatientDoc, Depends(_patient_in_my_care)]
