"""The analytics queries: the bulk event insert, the listeners' upserts and the report SQL.

The report statements are module-level constants so that the index test can ``EXPLAIN`` exactly
what runs here. Every report statement filters on a constant event type and a half-open time
window ``[:start, :end)``, which is what the partial indexes of the migration are shaped for.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.platform.db.read_session import AsyncReadSession


@dataclass
class EventColumns:
    """A batch of events as parallel column arrays: what one ``unnest`` insert takes."""

    type: list[str] = field(default_factory=list)
    occurred_at: list[datetime | None] = field(default_factory=list)
    user_id: list[uuid.UUID | None] = field(default_factory=list)
    anonymous_id: list[str | None] = field(default_factory=list)
    name: list[str | None] = field(default_factory=list)
    path: list[str | None] = field(default_factory=list)
    search_id: list[uuid.UUID | None] = field(default_factory=list)
    query: list[str | None] = field(default_factory=list)
    result_count: list[int | None] = field(default_factory=list)
    product_id: list[uuid.UUID | None] = field(default_factory=list)
    position: list[int | None] = field(default_factory=list)
    properties: list[str | None] = field(default_factory=list)  # JSON text

    def __len__(self) -> int:
        return len(self.type)


# One statement and one round trip for the whole batch, whatever its size: the arrays travel as
# parameters, so the statement text (and its prepared plan) never changes.
INSERT_EVENTS = text(
    """
    INSERT INTO analytics_event (type, occurred_at, user_id, anonymous_id, name, path,
                                 search_id, query, result_count, product_id, position, properties)
    SELECT u.type, COALESCE(u.occurred_at, now()), u.user_id, u.anonymous_id, u.name, u.path,
           u.search_id, u.query, u.result_count, u.product_id, u.position, u.properties::jsonb
    FROM unnest(
        CAST(:type AS text[]), CAST(:occurred_at AS timestamptz[]), CAST(:user_id AS uuid[]),
        CAST(:anonymous_id AS text[]), CAST(:name AS text[]), CAST(:path AS text[]),
        CAST(:search_id AS uuid[]), CAST(:query AS text[]), CAST(:result_count AS int[]),
        CAST(:product_id AS uuid[]), CAST(:position AS int[]), CAST(:properties AS text[])
    ) AS u(type, occurred_at, user_id, anonymous_id, name, path,
           search_id, query, result_count, product_id, position, properties)
    """
)


async def insert_events(session: AsyncSession, columns: EventColumns) -> None:
    await session.execute(INSERT_EVENTS, columns.__dict__)


# -- batch idempotency keys ---------------------------------------------------------------------

# Claims the key, or takes over an expired row for it, in one statement. On a conflict with a
# batch still in flight the statement waits for that transaction: committed, it is a replay;
# rolled back, this batch claims the key. RETURNING says which.
_CLAIM_BATCH_KEY = text(
    """
    INSERT INTO analytics_batch_key (scope, key, fingerprint, accepted, expires_at)
    VALUES (:scope, :key, :fingerprint, :accepted, now() + make_interval(secs => :ttl))
    ON CONFLICT (scope, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, accepted = EXCLUDED.accepted,
        created_at = now(), expires_at = EXCLUDED.expires_at
    WHERE analytics_batch_key.expires_at <= now()
    RETURNING true
    """
)
_GET_BATCH_KEY = text(
    "SELECT fingerprint, accepted FROM analytics_batch_key WHERE scope = :scope AND key = :key"
)
# Oldest first through the expires_at index, a bounded batch at a time; SKIP LOCKED so that a
# purge never waits for (or blocks) a batch claiming a key.
_PURGE_BATCH_KEYS = text(
    """
    DELETE FROM analytics_batch_key
    WHERE (scope, key) IN (
        SELECT scope, key FROM analytics_batch_key
        WHERE expires_at <= now()
        ORDER BY expires_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    """
)


async def claim_batch_key(
    session: AsyncSession, *, scope: str, key: str, fingerprint: str, accepted: int, ttl: float
) -> bool:
    """Store the key for this batch; False when a live row for it exists already."""
    params = {
        "scope": scope,
        "key": key,
        "fingerprint": fingerprint,
        "accepted": accepted,
        "ttl": ttl,
    }
    return (await session.execute(_CLAIM_BATCH_KEY, params)).first() is not None


async def get_batch_key(session: AsyncSession, *, scope: str, key: str) -> tuple[str, int] | None:
    row = (await session.execute(_GET_BATCH_KEY, {"scope": scope, "key": key})).first()
    return None if row is None else (str(row[0]), int(row[1]))


async def purge_batch_keys(session: AsyncSession, limit: int) -> int:
    result: Any = await session.execute(_PURGE_BATCH_KEYS, {"limit": limit})
    return int(result.rowcount)


# -- what the listeners learn from other modules ------------------------------------------------
# Upserts keyed by the natural key: a redelivered event changes nothing, and events arriving out
# of order (verified before signed up, failed after paid) converge to the same row.

_SIGNUP_STARTED = text(
    """
    INSERT INTO analytics_signup (user_id, signed_up_at)
    VALUES (:user_id, COALESCE(:at, now()))
    ON CONFLICT (user_id) DO UPDATE
    SET signed_up_at = LEAST(analytics_signup.signed_up_at, EXCLUDED.signed_up_at)
    """
)
_SIGNUP_VERIFIED = text(
    """
    INSERT INTO analytics_signup (user_id, verified_at)
    VALUES (:user_id, COALESCE(:at, now()))
    ON CONFLICT (user_id) DO UPDATE
    SET verified_at = LEAST(analytics_signup.verified_at, EXCLUDED.verified_at)
    """
)
# 'paid' is final: a later or redelivered failure never overrides it. Among failures the first
# one's time is kept, so redelivery is a no-op.
_CHECKOUT = text(
    """
    INSERT INTO analytics_checkout (order_id, user_id, outcome, amount, currency, at)
    VALUES (:order_id, :user_id, :outcome, :amount, :currency, COALESCE(:at, now()))
    ON CONFLICT (order_id) DO UPDATE
    SET outcome = CASE WHEN analytics_checkout.outcome = 'paid' OR EXCLUDED.outcome = 'paid'
                       THEN 'paid' ELSE 'failed' END,
        at = CASE
               WHEN analytics_checkout.outcome = 'paid' THEN analytics_checkout.at
               WHEN EXCLUDED.outcome = 'paid' THEN EXCLUDED.at
               ELSE LEAST(analytics_checkout.at, EXCLUDED.at)
             END,
        amount = CASE WHEN analytics_checkout.outcome = 'paid'
                      THEN analytics_checkout.amount ELSE EXCLUDED.amount END,
        currency = CASE WHEN analytics_checkout.outcome = 'paid'
                        THEN analytics_checkout.currency ELSE EXCLUDED.currency END
    """
)


async def record_signup_started(
    session: AsyncSession, user_id: uuid.UUID, at: datetime | None
) -> None:
    await session.execute(_SIGNUP_STARTED, {"user_id": user_id, "at": at})


async def record_signup_verified(
    session: AsyncSession, user_id: uuid.UUID, at: datetime | None
) -> None:
    await session.execute(_SIGNUP_VERIFIED, {"user_id": user_id, "at": at})


async def record_checkout(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    outcome: str,
    amount: int,
    currency: str,
    at: datetime | None,
) -> None:
    await session.execute(
        _CHECKOUT,
        {
            "order_id": order_id,
            "user_id": user_id,
            "outcome": outcome,
            "amount": amount,
            "currency": currency,
            "at": at,
        },
    )


# -- reports (run on the read session, under a statement timeout) -------------------------------

# Transaction-local (SET LOCAL, via set_config(..., true) because it takes a parameter): the
# settings end with the report's read transaction and never leak into the pooled connection's
# next user. Besides the timeout, one report is held to one process: no parallel workers, so the
# bulkhead's N reports mean at most N busy cores on the replica; and no JIT, which costs a long
# report hundreds of milliseconds of CPU and buys it nothing (it is index-bound, not CPU-bound).
SET_STATEMENT_TIMEOUT = text(
    "SELECT set_config('statement_timeout', :timeout, true), "
    "set_config('max_parallel_workers_per_gather', '0', true), "
    "set_config('jit', 'off', true)"
)

FUNNEL_SIGNUPS = text(
    """
    SELECT date_trunc(:unit, signed_up_at, 'UTC') AS bucket,
           count(*) AS started,
           count(verified_at) AS verified
    FROM analytics_signup
    WHERE signed_up_at >= :start AND signed_up_at < :end
    GROUP BY bucket
    """
)

FUNNEL_CHECKOUTS = text(
    """
    SELECT date_trunc(:unit, at, 'UTC') AS bucket,
           count(*) FILTER (WHERE outcome = 'paid') AS paid,
           count(*) FILTER (WHERE outcome = 'failed') AS failed
    FROM analytics_checkout
    WHERE at >= :start AND at < :end
    GROUP BY bucket
    """
)

# A search counts as clicked when any click names its search_id, whenever it came. LATERAL ...
# LIMIT 1 keeps this a per-search probe of the click index: an EXISTS could be planned as a
# hashed subplan that reads every click ever recorded, which grows with the table, not the window.
FUNNEL_SEARCHES = text(
    """
    SELECT date_trunc(:unit, s.occurred_at, 'UTC') AS bucket,
           count(*) AS searches,
           count(c.hit) AS clicked
    FROM analytics_event AS s
    LEFT JOIN LATERAL (
        SELECT 1 AS hit
        FROM analytics_event AS c
        WHERE c.type = 'search_click' AND c.search_id = s.search_id
        LIMIT 1
    ) AS c ON true
    WHERE s.type = 'search' AND s.occurred_at >= :start AND s.occurred_at < :end
    GROUP BY bucket
    """
)

TOP_SEARCH_TERMS = text(
    """
    SELECT query AS term,
           count(*) AS searches,
           count(*) FILTER (WHERE result_count = 0) AS zero_result_searches
    FROM analytics_event
    WHERE type = 'search' AND occurred_at >= :start AND occurred_at < :end
    GROUP BY query
    ORDER BY searches DESC, term
    LIMIT :limit
    """
)

MOST_CLICKED_PRODUCTS = text(
    """
    SELECT product_id,
           count(*) AS clicks,
           avg(position)::float8 AS mean_position
    FROM analytics_event
    WHERE type = 'search_click' AND occurred_at >= :start AND occurred_at < :end
    GROUP BY product_id
    ORDER BY clicks DESC, product_id
    LIMIT :limit
    """
)

# Every report statement with a parameter set, for the index test's EXPLAIN.
REPORT_STATEMENTS: dict[str, TextClause] = {
    "funnel_signups": FUNNEL_SIGNUPS,
    "funnel_checkouts": FUNNEL_CHECKOUTS,
    "funnel_searches": FUNNEL_SEARCHES,
    "top_search_terms": TOP_SEARCH_TERMS,
    "most_clicked_products": MOST_CLICKED_PRODUCTS,
}


async def set_statement_timeout(session: AsyncReadSession, timeout_ms: int) -> None:
    await session.execute(SET_STATEMENT_TIMEOUT, {"timeout": str(timeout_ms)})


async def _rows(session: AsyncReadSession, stmt: TextClause, **params: Any) -> Sequence[Any]:
    result = await session.execute(stmt, params)
    return result.all()


async def funnel_signups(
    session: AsyncReadSession, unit: str, start: datetime, end: datetime
) -> Sequence[Any]:
    return await _rows(session, FUNNEL_SIGNUPS, unit=unit, start=start, end=end)


async def funnel_checkouts(
    session: AsyncReadSession, unit: str, start: datetime, end: datetime
) -> Sequence[Any]:
    return await _rows(session, FUNNEL_CHECKOUTS, unit=unit, start=start, end=end)


async def funnel_searches(
    session: AsyncReadSession, unit: str, start: datetime, end: datetime
) -> Sequence[Any]:
    return await _rows(session, FUNNEL_SEARCHES, unit=unit, start=start, end=end)


async def top_search_terms(
    session: AsyncReadSession, start: datetime, end: datetime, limit: int
) -> Sequence[Any]:
    return await _rows(session, TOP_SEARCH_TERMS, start=start, end=end, limit=limit)


async def most_clicked_products(
    session: AsyncReadSession, start: datetime, end: datetime, limit: int
) -> Sequence[Any]:
    return await _rows(session, MOST_CLICKED_PRODUCTS, start=start, end=end, limit=limit)
