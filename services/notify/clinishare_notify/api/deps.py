"""Annotated dependencies: the store, and "load the caller's notification or 404"."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from clinishare_shared.auth import CurrentPrincipal
from clinishare_shared.deps import from_state
from clinishare_shared.ids import PathId
from clinishare_shared.problems import not_found

from clinishare_notify.domain.stored import NotificationDoc
from clinishare_notify.store import NotifyStore

StoreDep = Annotated[NotifyStore, from_state("store")]


async def _current_notification(notification_id: PathId, principal: CurrentPrincipal,
                                store: StoreDep) -> NotificationDoc:
    # someone else's notification is exactly as missing as one that does not exist
    doc = await store.get(notification_id, principal.id)
    if doc is None:
        raise not_found("notification")
    return doc


CurrentNotification = Annotated[NotificationDoc, Depends(_current_notification)]
