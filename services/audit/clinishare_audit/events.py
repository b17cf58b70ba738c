"""What audit consumes (it publishes nothing): ``identity.*`` into its identity projection (care teams
decide who may read a patient's disclosures, and which authors' ``all`` grants a patient's list shows;
names come from it), and the share, unshare, revoke, expiry and ``*.accessed`` events, each recorded
once in the right chain (``domain.entries``, ``service.record``)."""

from __future__ import annotations

from functools import partial

from clinishare_shared.bus.base import Handler
from clinishare_shared.projection import IdentityProjection

from clinishare_audit import service
from clinishare_audit.domain.entries import CONSUMED
from clinishare_audit.store import AuditStore


def consumed(store: AuditStore, projection: IdentityProjection) -> dict[str, Handler]:
    record = partial(service.record, store=store)
    return {**projection.handlers, **{model.event_type: record for model in CONSUMED}}
