"""The notifications FastAPI dependencies: services on the right session, the inbox cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.modules.notifications.service import NotificationReader, NotificationService
from app.platform.pagination import MAX_CURSOR_LENGTH, Keyset, decode_cursor
from app.platform.web.sessions import PrimarySession, ReadSession


def _writer(session: PrimarySession) -> NotificationService:
    return NotificationService(session)


def _reader(session: ReadSession) -> NotificationReader:
    return NotificationReader(session)


WritingService = Annotated[NotificationService, Depends(_writer)]
ReadingService = Annotated[NotificationReader, Depends(_reader)]


def _cursor(
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="next_cursor of the previous page"),
    ] = None,
) -> Keyset | None:
    return decode_cursor(cursor)


InboxCursor = Annotated[Keyset | None, Depends(_cursor)]
