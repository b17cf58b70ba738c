"""The caller's inbox: any account kind (practitioner, staff, patient) sees its own notifications only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from clinishare_shared.auth import CurrentPrincipal
from clinishare_shared.pagination import PageParams

from clinishare_notify import service
from clinishare_notify.api.deps import CurrentNotification, StoreDep
from clinishare_notify.domain.schemas import NotificationPage, NotificationRead

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.get("", summary="My notifications, newest first")
async def list_notifications(
    principal: CurrentPrincipal, store: StoreDep, params: PageParams,
    unread: Annotated[bool | None, Query(description="true: unread only; false: read only")] = None,
) -> NotificationPage:
    docs, next_cursor = await store.page(principal.id, unread=unread, limit=params.limit, cursor=params.cursor)
    return NotificationPage(items=[NotificationRead.from_doc(d) for d in docs], next_cursor=next_cursor)


@router.post("/{notification_id}/read", summary="Mark one of my notifications read")
async def mark_read(notification: CurrentNotification, store: StoreDep) -> NotificationRead:
    return NotificationRead.from_doc(await service.mark_read(store=store, notification=notification))
