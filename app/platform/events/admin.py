"""Operating the outbox: failed deliveries, resubmitting them, pruning, pending statistics."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    id: uuid.UUID
    event_id: uuid.UUID
    event: str
    version: int
    listener: str
    attempts: int
    last_error: str | None
    published_at: datetime
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class Filters:
    """Which failed deliveries a command applies to; ``None`` matches everything."""

    listener: str | None = None
    event: str | None = None
    older_than: timedelta | None = None

    def where(self) -> tuple[str, dict[str, object]]:
        clauses = ["d.status = 'failed'"]
        params: dict[str, object] = {}
        if self.listener is not None:
            clauses.append("d.listener = :listener")
            params["listener"] = self.listener
        if self.event is not None:
            clauses.append("e.name = :event")
            params["event"] = self.event
        if self.older_than is not None:
            clauses.append("d.finished_at < now() - make_interval(secs => :older)")
            params["older"] = self.older_than.total_seconds()
        return " AND ".join(clauses), params


async def list_failed(
    conn: AsyncConnection, filters: Filters = Filters(), limit: int = 100
) -> list[FailedDelivery]:
    where, params = filters.where()
    rows = await conn.execute(
        text(
            # Only fixed clauses are interpolated; every value is a bound parameter.
            "SELECT d.id, d.event_id, e.name, e.version, d.listener, d.attempts, d.last_error,"  # noqa: S608
            " e.published_at, d.finished_at"
            " FROM platform_event_delivery d JOIN platform_outbox_event e ON e.id = d.event_id"
            f" WHERE {where} ORDER BY d.finished_at, d.id LIMIT :limit"
        ),
        {**params, "limit": limit},
    )
    return [FailedDelivery(*row) for row in rows]


async def resubmit(conn: AsyncConnection, filters: Filters = Filters()) -> int:
    """Make matching failed deliveries pending again with a fresh set of attempts."""
    where, params = filters.where()
    result = await conn.execute(
        text(
            "UPDATE platform_event_delivery d"  # noqa: S608 - fixed clauses, bound values
            " SET status = 'pending', attempts = 0, available_at = now(), finished_at = NULL"
            " FROM platform_outbox_event e"
            f" WHERE e.id = d.event_id AND {where}"
        ),
        params,
    )
    count = result.rowcount
    if count:
        await conn.execute(text("SELECT pg_notify('platform_outbox', '')"))
    return count


async def prune(conn: AsyncConnection, retention: timedelta, batch: int = 5000) -> tuple[int, int]:
    """Delete done deliveries finished before the retention window, then their spent events.

    Failed and pending deliveries (and their events) stay. One dispatcher prunes at a time.
    Returns (deliveries, events) deleted.
    """
    locked = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext('outbox_prune'))"))
    if not locked:
        return 0, 0
    params = {"secs": retention.total_seconds(), "batch": batch}
    deliveries = await conn.execute(
        text(
            "DELETE FROM platform_event_delivery WHERE id IN ("
            " SELECT id FROM platform_event_delivery WHERE status = 'done'"
            " AND finished_at < now() - make_interval(secs => :secs) LIMIT :batch)"
        ),
        params,
    )
    events = await conn.execute(
        text(
            "DELETE FROM platform_outbox_event WHERE id IN ("
            " SELECT e.id FROM platform_outbox_event e"
            " WHERE e.published_at < now() - make_interval(secs => :secs)"
            " AND NOT EXISTS (SELECT 1 FROM platform_event_delivery d WHERE d.event_id = e.id)"
            " LIMIT :batch)"
        ),
        params,
    )
    return deliveries.rowcount, events.rowcount


async def pending_stats(conn: AsyncConnection) -> tuple[dict[str, int], float]:
    """(pending deliveries per listener, age in seconds of the oldest one or 0)."""
    rows = await conn.execute(
        text(
            "SELECT listener, count(*), extract(epoch FROM now() - min(created_at))::float8"
            " FROM platform_event_delivery WHERE status = 'pending' GROUP BY listener"
        )
    )
    counts: dict[str, int] = {}
    oldest = 0.0
    for listener, count, age in rows:
        counts[listener] = count
        oldest = max(oldest, age or 0.0)
    return counts, oldest


def parse_duration(value: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d`` -> timedelta (for the CLI's --older-than)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = value.strip().lower()
    unit = value[-1] if value and value[-1] in units else "s"
    number = value[:-1] if value and value[-1] in units else value
    try:
        amount = float(number)
    except ValueError:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 2h, 7d)") from None
    if amount < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    return timedelta(seconds=amount * units[unit])
