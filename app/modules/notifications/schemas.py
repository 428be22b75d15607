"""The notifications HTTP request and response models."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.platform.schema import Page, RequestBody


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    template: str
    subject: str
    body: str
    read_at: datetime | None
    created_at: datetime


class NotificationPage(Page[NotificationOut]):
    unread_count: int


class ReadAllResult(BaseModel):
    marked: int = Field(description="how many notifications were unread and are now read")


class EmailCategory(BaseModel):
    category: str
    description: str
    email_enabled: bool


class PreferencesOut(BaseModel):
    email: list[EmailCategory]


class PreferencesUpdate(RequestBody):
    email: dict[str, bool] = Field(
        description="optional email categories to turn on (true) or off (false)"
    )
