"""The audit service's use cases (keyword-only arguments): recording what an event discloses in the right
hash chains, which chains make up a patient's accounting of disclosures, the names it is shown with, and
checking the chains."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from clinishare_shared.events import Envelope
from clinishare_shared.mongo import new_id
from clinishare_shared.problems import Problem
from clinishare_shared.projection import IdentityProjection
from clinishare_shared.retry import TryAgain, optimistic

from clinishare_audit.domain.chain import GENESIS, seal, verify
from clinishare_audit.domain.entries import author_chain, entries_for, patient_chain
from clinishare_audit.domain.stored import DisclosureDoc, EntryFields
from clinishare_audit.store import AuditStore

log = structlog.get_logger("clinishare.audit.service")

# appenders racing for one chain's next position: each round exactly one wins, so a chain busy with many
# writers at once needs many rounds; past this the handler fails and the event is redelivered
APPEND_ATTEMPTS = 100


async def append(*, store: AuditStore, entry: EntryFields) -> bool:
    """Record ``entry`` at the end of its chain; False if this event is already in that chain."""
    chain = entry["chain"]

    async def step() -> bool:
        if await store.recorded(entry["event_id"], chain):
            return False
        last = await store.last(chain)
        sealed = seal(entry, entry_id=new_id(), seq=last["seq"] + 1 if last else 1,
                      prev_hash=last["hash"] if last else GENESIS)
        if not await store.insert(sealed):
            raise TryAgain  # the position (or this very event) was taken meanwhile: look again
        return True

    # one append per chain at a time in this process: racing for a position is left to replicas (a lost
    # race makes the next look read the chain in full, a scan of every entry on FerretDB)
    async with store.appending.hold(chain):
        return await optimistic(step, attempts=APPEND_ATTEMPTS,
                                exhausted=Problem(503, f"could not append to chain {chain}"))


async def record(event: Envelope, *, store: AuditStore) -> None:
    """What one consumed event discloses, each entry once in its chain (a redelivery records nothing)."""
    recorded = 0
    for entry in entries_for(event):
        recorded += await append(store=store, entry=entry)
    log.info("disclosure_recorded", event_type=event.type, entries=recorded)


async def chains_of(*, patient_id: str, projection: IdentityProjection) -> list[str]:
    """The patient's own chain, and the chains of grants over all of a care-team member's charts: a grant
    under rule ``all`` covers every patient of its author, whenever their charts were written."""
    return [patient_chain(patient_id), *(author_chain(a) for a in await projection.care_team(patient_id))]


@dataclass(frozen=True)
class Names:
    """Who the entries name, as the identity projection knows them now."""
    people: dict[str, str]
    offices: dict[str, str]


async def names_in(*, entries: Iterable[DisclosureDoc], projection: IdentityProjection) -> Names:
    entries = list(entries)
    people = await projection.names(p for d in entries for p in
                                    [d.get("discloser_id"), d.get("accessor_id"), *d["practitioner_ids"]] if p)
    offices = await projection.office_names(o.split(":")[0] for d in entries for o in d["office_ids"])
    return Names(people=people, offices=offices)


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
