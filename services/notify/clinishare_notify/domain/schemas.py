"""The API's request and response models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, StrictBool

from clinishare_shared.pagination import Page

from clinishare_notify.domain.stored import NotificationDoc


class NotificationRead(BaseModel):
    id: str
    type: str
    created_at: datetime
    read: bool
    title: str
    link: str

    @classmethod
    def from_doc(cls, doc: NotificationDoc) -> NotificationRead:
        return cls(id=doc["_id"], type=doc["type"], created_at=doc["created_at"], read=doc["read"],
                   title=doc["title"], link=doc["link"])


NotificationPage = Page[NotificationRead]


class PreferencesRead(BaseModel):
    email: bool


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: StrictBool
