"""What audit consumes (it publishes nothing): ``identity.*`` into its identity projection (care teams
decide who may read a patient's disclosures, and which authors' ``all`` grants a patient's list shows;
names come from it), and the share, unshare, revoke, expiry and ``*.accessed`` events, each recorded
once in the right chain (``domain.entries``)."""

from __future__ import annotations

import structlog

from clinishare_shared.bus.base import Handler
from clinishare_shared.events import Envelope
from clinishare_shared.projection import IdentityProjection

from clinishare_audit.domain.entries import CONSUMED, entries_for
from clinishare_audit.store import AuditStore

log = structlog.get_logger("clinishare.audit.events")


def consumed(store: AuditStore, projection: IdentityProjection) -> dict[str, Handler]:
    async def record(event: Envelope) -> None:
        recorded = 0
        for entry in entries_for(event):
            recorded += await store.append(entry)
        log.info("disclosure_recorded", event_type=event.type, entries=recorded)

    return {**projection.handlers, **{model.event_type: record for model in CONSUMED}}
