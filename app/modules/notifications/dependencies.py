"""The notifications FastAPI dependencies: services on the right session, the inbox cursor."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query

from app.modules.notifications.service import NotificationService
from app.platform.db import PrimarySession, ReadSession
from app.platform.errors import BadRequest


def _writer(session: PrimarySession) -> NotificationService:
    return NotificationService(session)


def _reader(session: ReadSession) -> NotificationService:
    return NotificationService(session)


WritingService = Annotated[NotificationService, Depends(_writer)]
ReadingService = Annotated[NotificationService, Depends(_reader)]


def encode_cursor(after: tuple[datetime, uuid.UUID]) -> str:
    raw = f"{after[0].isoformat()}|{after[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, ident = raw.partition("|")
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The cursor is not one this API returned", reason="cursor") from exc


InboxCursor = Annotated[tuple[datetime, uuid.UUID] | None, Depends(_cursor)]
