"""The dispatcher's statements: the claim (a lease) and the fenced outcomes of an attempt."""

from __future__ import annotations

from sqlalchemy import Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

CLAIM = text(
    """
    WITH claimed AS (
        SELECT id FROM platform_event_delivery
        WHERE status = 'pending' AND available_at <= now() AND listener = ANY(:listeners)
        ORDER BY available_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE platform_event_delivery AS d
    SET attempts = d.attempts + 1, available_at = now() + make_interval(secs => :lease)
    FROM claimed, platform_outbox_event AS e
    WHERE d.id = claimed.id AND e.id = d.event_id
    RETURNING d.id, d.event_id, d.listener, d.attempts, e.name, e.version, e.payload,
              e.published_at
    """
).bindparams(bindparam("listeners", type_=ARRAY(Text)))

# Each ends in the fence: only the attempt that holds the claim may record its outcome.
MARK_DONE = text(
    "UPDATE platform_event_delivery SET status = 'done', finished_at = now(), last_error = NULL"
    " WHERE id = :id AND attempts = :attempt AND status = 'pending'"
)
MARK_RETRY = text(
    "UPDATE platform_event_delivery"
    " SET available_at = now() + make_interval(secs => :delay), last_error = :error"
    " WHERE id = :id AND attempts = :attempt AND status = 'pending'"
)
MARK_FAILED = text(
    "UPDATE platform_event_delivery SET status = 'failed', finished_at = now(), last_error = :error"
    " WHERE id = :id AND attempts = :attempt AND status = 'pending'"
)
