"""The notifications HTTP API: the caller's own inbox and email preferences."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.modules.notifications.dependencies import (
    InboxCursor,
    ReadingService,
    WritingService,
)
from app.modules.notifications.rendering import OPTIONAL_CATEGORIES
from app.modules.notifications.schemas import (
    EmailCategory,
    NotificationOut,
    NotificationPage,
    PreferencesOut,
    PreferencesUpdate,
    ReadAllResult,
)
from app.platform.pagination import encode_cursor
from app.platform.web.security import CurrentPrincipal

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.get("", response_model=NotificationPage)
async def list_notifications(
    principal: CurrentPrincipal,
    service: ReadingService,
    after: InboxCursor,
    unread: Annotated[bool, Query(description="only notifications not read yet")] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> NotificationPage:
    """The caller's notifications, newest first, a page at a time."""
    page = await service.inbox(principal.user_id, unread_only=unread, after=after, limit=limit)
    return NotificationPage(
        items=[NotificationOut.model_validate(n) for n in page.items],
        next_cursor=encode_cursor(*page.next_after) if page.next_after else None,
        unread_count=page.unread_count,
    )


@router.post("/read-all", response_model=ReadAllResult)
async def read_all(principal: CurrentPrincipal, service: WritingService) -> ReadAllResult:
    """Mark all of the caller's notifications read."""
    return ReadAllResult(marked=await service.mark_all_read(principal.user_id))


@router.post("/{notification_id}/read", response_model=NotificationOut)
async def read_one(
    notification_id: uuid.UUID, principal: CurrentPrincipal, service: WritingService
) -> NotificationOut:
    """Mark one of the caller's notifications read; another user's is 404."""
    notification = await service.mark_read(principal.user_id, notification_id)
    return NotificationOut.model_validate(notification)


def _preferences_out(email: dict[str, bool]) -> PreferencesOut:
    return PreferencesOut(
        email=[
            EmailCategory(category=c, description=d, email_enabled=email.get(c, True))
            for c, d in OPTIONAL_CATEGORIES.items()
        ]
    )


@router.get("/preferences", response_model=PreferencesOut)
async def get_preferences(principal: CurrentPrincipal, service: ReadingService) -> PreferencesOut:
    """The caller's optional email categories and whether each is on."""
    return _preferences_out(await service.preferences(principal.user_id))


@router.put("/preferences", response_model=PreferencesOut)
async def put_preferences(
    body: PreferencesUpdate, principal: CurrentPrincipal, service: WritingService
) -> PreferencesOut:
    """Turn optional email categories on or off; categories not named keep their setting."""
    return _preferences_out(await service.set_preferences(principal.user_id, body.email))
