"""Keyset pagination: one opaque cursor codec and one problem type for a cursor we did not issue.

A cursor is the (created_at, id) of a page's last row, as URL-safe base64 of a JSON pair; clients
pass ``next_cursor`` back unchanged and must not build one. Every list endpoint uses this codec,
so a bad cursor is the same ``/problems/invalid-cursor`` 400 everywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from app.platform.errors import BadRequest

Keyset = tuple[datetime, uuid.UUID]
MAX_CURSOR_LENGTH = 200


class InvalidCursor(BadRequest):
    slug, title = "invalid-cursor", "The page cursor is not valid"

    def __init__(self) -> None:
        super().__init__("Pass back the next_cursor of a previous page unchanged")


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.astimezone(UTC).isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Keyset | None:
    """The position ``cursor`` names, None for the first page, or ``InvalidCursor``."""
    if cursor is None:
        return None
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        position = (datetime.fromisoformat(created), uuid.UUID(row_id))
        if position[0].tzinfo is None:
            raise ValueError("naive")
        position[0].astimezone(UTC)
    except (binascii.Error, ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    return position
