"""The caller's inbox: any account kind (practitioner, staff, patient) sees its own notifications only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from clinishare_shared.auth import CurrentPrincipal
from clinishare_shared.pagination import Page, PageParams

from clinishare_notify.api.deps import CurrentNotification, StoreDep

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


class NotificationRead(BaseModel):
    id: str
    type: str
    created_at: datetime
    read: bool
    title: str
    link: str

    @classmethod
    def of(cls, doc: dict[str, Any]) -> "NotificationRead":
        return cls(id=doc["_id"], type=doc["type"], created_at=doc["created_at"], read=doc["read"],
                   title=doc["title"], link=doc["link"])


NotificationPage = Page[NotificationRead]


@router.get("", summary="My notifications, newest first")
async def list_notifications(
    principal: CurrentPrincipal, store: StoreDep, params: PageParams,
    unread: Annotated[bool | None, Query(description="true: unread only; false: read only")] = None,
) -> NotificationPage:
    docs, next_cursor = await store.page(principal.id, unread=unread, limit=params.limit, cursor=params.cursor)
    return NotificationPage(items=[NotificationRead.of(d) for d in docs], next_cursor=next_cursor)


@router.post("/{notification_id}/read", summary="Mark one of my notifications read")
async def mark_read(notification: CurrentNotification, principal: CurrentPrincipal,
                    store: StoreDep) -> NotificationRead:
    doc = await store.mark_read(notification["_id"], principal.id)
    return NotificationRead.of(doc or notification)
