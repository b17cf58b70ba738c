"""The audit service's use cases (keyword-only arguments): which hash chains make up a patient's
accounting of disclosures, and checking them."""

from __future__ import annotations

from clinishare_shared.projection import IdentityProjection

from clinishare_audit.domain.chain import verify
from clinishare_audit.domain.entries import author_chain, patient_chain
from clinishare_audit.store import AuditStore


async def chains_of(*, patient_id: str, projection: IdentityProjection) -> list[str]:
    """The patient's own chain, and the chains of grants over all of a care-team member's charts: a grant
    under rule ``all`` covers every patient of its author, whenever their charts were written."""
    return [patient_chain(patient_id), *(author_chain(a) for a in await projection.care_team(patient_id))]


async def verify_patient(*, patient_id: str, store: AuditStore,
                         projection: IdentityProjection) -> tuple[bool, int, str | None]:
    """(ok, entries checked, the first bad entry) over every chain of the patient's accounting."""
    total = 0
    for chain in await chains_of(patient_id=patient_id, projection=projection):
        verdict = verify(await store.chain(chain))
        total += verdict.entries
        if not verdict.ok:
            return False, total, verdict.first_bad
    return True, total, None
