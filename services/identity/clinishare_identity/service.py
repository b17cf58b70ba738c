"""Identity's use cases that more than one router needs (keyword-only arguments): minting a unique PIN,
and the caller's sharing list computed with the common pure rule over identity's own data."""

from __future__ import annotations

from clinishare_shared.domain.sharing import SharingList, sharing_list
from clinishare_identity.domain.pins import generate_pin
from clinishare_identity.store import IdentityStore


async def fresh_pin(*, store: IdentityStore, attempts: int = 5) -> str:
    """A PIN no account or office holds. At 50 bits a clash is all but impossible; the unique indexes
    still catch a race between this check and the write."""
    for _ in range(attempts):
        pin = generate_pin()
        if not await store.pin_taken(pin):
            return pin
    raise RuntimeError("could not find a free PIN")  # pragma: no cover - would mean a broken RNG


async def sharing_list_of(*, store: IdentityStore, account_id: str) -> SharingList:
    offices, connections, practitioners = await store.sharing_inputs(account_id)
    return sharing_list(account_id, my_offices=offices, connections=connections, practitioner_ids=practitioners)
