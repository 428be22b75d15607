"""The notifications HTTP request and response models."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    template: str
    subject: str
    body: str
    read_at: datetime | None
    created_at: datetime


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null on the last page"
    )
    unread_count: int


class ReadAllResult(BaseModel):
    marked: int = Field(description="how many notifications were unread and are now read")


class EmailCategory(BaseModel):
    category: str
    description: str
    email_enabled: bool


class PreferencesOut(BaseModel):
    email: list[EmailCategory]


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: dict[str, bool] = Field(
        description="optional email categories to turn on (true) or off (false)"
    )
