"""Annotated dependencies of the audit API: the store, and whose accounting the caller may read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from clinishare_audit.store import AuditStore
from clinishare_shared.auth import CurrentPatient, CurrentPrincipal
from clinishare_shared.deps import ProjectionDep, from_state
from clinishare_shared.ids import PathId
from clinishare_shared.problems import not_found

StoreDep = Annotated[AuditStore, from_state("store")]


async def _visible_patient(patient_id: PathId, principal: CurrentPrincipal, projection: ProjectionDep) -> str:
    """The patient themself, or a practitioner of their care team now; for anyone else it does not exist."""
    if principal.kind == "patient":
        if principal.id != patient_id:
            raise not_found("patient")
    elif principal.kind != "practitioner" or not await projection.in_care(patient_id, principal.id):
        raise not_found("patient")
    return patient_id


VisiblePatient = Annotated[str, Depends(_visible_patient)]


async def _own_patient(patient: CurrentPatient) -> str:
    return patient.id


OwnPatient = Annotated[str, Depends(_own_patient)]
