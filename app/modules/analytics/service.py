"""Analytics use cases: validate and store event batches, record other modules' facts, reports."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.analytics import metrics, repository
from app.modules.analytics.schemas import (
    EVENT_ADAPTER,
    CheckoutStarted,
    ClickedProduct,
    ClickedProductsReport,
    Custom,
    Event,
    EventProblem,
    FunnelBucket,
    FunnelReport,
    Interval,
    PageView,
    Search,
    SearchClick,
    SearchTerm,
    SearchTermsReport,
)
from app.platform.config import Settings
from app.platform.errors import GatewayTimeout, ServiceUnavailable, ValidationFailed

# Clients buffer events offline; older than this they are more likely replays than news, and a
# far-off timestamp would also spoil the time order the BRIN index relies on.
MAX_EVENT_AGE = timedelta(days=30)
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_BUCKETS = 1000
RETRY_AFTER_SECONDS = 1

_QUERY_CANCELED = "57014"  # statement_timeout (or a cancel request)
_RECOVERY_CONFLICT = "40001"  # a replica cancelled the query to replay WAL


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_batch_events: int
    max_properties_bytes: int
    max_properties_keys: int
    max_properties_depth: int
    max_string_length: int

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            max_batch_events=settings.analytics_max_batch_events,
            max_properties_bytes=settings.analytics_max_properties_bytes,
            max_properties_keys=settings.analytics_max_properties_keys,
            max_properties_depth=settings.analytics_max_properties_depth,
            max_string_length=settings.analytics_max_string_length,
        )


# -- ingestion ----------------------------------------------------------------------------------


def _pydantic_problems(index: int, exc: ValidationError, event_type: object) -> list[EventProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] == event_type:  # the discriminated union's tag, not a field
            loc = loc[1:]
        problems.append(EventProblem(index=index, field=".".join(loc) or None, reason=err["msg"]))
    return problems


def _json_shape(value: Any, depth: int = 1) -> tuple[int, int]:
    """(keys at every level, nesting depth) of a JSON value; a scalar has depth 0."""
    if isinstance(value, dict):
        keys, deepest = len(value), 0
        for item in value.values():
            k, d = _json_shape(item, depth + 1)
            keys, deepest = keys + k, max(deepest, d)
        return keys, max(depth, deepest)
    if isinstance(value, list):
        keys, deepest = 0, 0
        for item in value:
            k, d = _json_shape(item, depth + 1)
            keys, deepest = keys + k, max(deepest, d)
        return keys, max(depth, deepest)
    return 0, 0


def _bad_scalars(value: Any, limit: int, path: str) -> list[tuple[str, str]]:
    """Strings (keys included) too long or holding NUL, and non-finite numbers, in a JSON value.

    PostgreSQL refuses NUL in text and jsonb, and JSON has no NaN: caught here, they would be
    a 500 at insert time instead of a 422 naming the event.
    """
    out: list[tuple[str, str]] = []
    if isinstance(value, str):
        if len(value) > limit:
            out.append((path, f"string longer than {limit} characters"))
        if "\x00" in value:
            out.append((path, "string contains a NUL character"))
    elif isinstance(value, float) and not math.isfinite(value):
        out.append((path, "number is not finite"))
    elif isinstance(value, dict):
        for key, item in value.items():
            out += _bad_scalars(key, limit, f"{path}.{key}"[:200])
            out += _bad_scalars(item, limit, f"{path}.{key}"[:200])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _bad_scalars(item, limit, f"{path}[{i}]")
    return out


def _limit_problems(
    index: int, event: Event, limits: IngestLimits, now: datetime
) -> list[EventProblem]:
    found: list[tuple[str, str]] = []
    for name in ("path", "query", "name"):
        value = getattr(event, name, None)
        if isinstance(value, str):
            found += _bad_scalars(value, limits.max_string_length, name)
    if isinstance(event, Search) and not event.query.strip():
        found.append(("query", "query is blank"))
    properties = getattr(event, "properties", None)
    if properties is not None:
        size = len(json.dumps(properties, separators=(",", ":"), ensure_ascii=False).encode())
        keys, depth = _json_shape(properties)
        most = limits
        if size > most.max_properties_bytes:
            found.append(
                ("properties", f"{size} bytes of JSON; at most {most.max_properties_bytes}")
            )
        if keys > most.max_properties_keys:
            found.append(("properties", f"{keys} keys; at most {most.max_properties_keys}"))
        if depth > most.max_properties_depth:
            found.append(
                ("properties", f"nested {depth} deep; at most {most.max_properties_depth}")
            )
        found += _bad_scalars(properties, limits.max_string_length, "properties")
    if event.occurred_at is not None:
        if event.occurred_at > now + MAX_CLOCK_SKEW:
            found.append(("occurred_at", "is in the future"))
        elif event.occurred_at < now - MAX_EVENT_AGE:
            found.append(("occurred_at", f"is older than {MAX_EVENT_AGE.days} days"))
    return [EventProblem(index=index, field=f, reason=r) for f, r in found]


def validate_batch(raw_events: Sequence[dict[str, Any]], limits: IngestLimits) -> list[Event]:
    """Every event of the batch, validated; or ``ValidationFailed`` naming every bad one."""
    if len(raw_events) > limits.max_batch_events:
        metrics.BATCHES_REJECTED.labels("too_large").inc()
        raise ValidationFailed(
            f"The batch has {len(raw_events)} events; at most {limits.max_batch_events} are "
            "accepted at once",
            errors=[
                {"index": None, "field": "events", "reason": "too many events"},
            ],
        )
    now = datetime.now(UTC)
    events: list[Event] = []
    problems: list[EventProblem] = []
    for index, raw in enumerate(raw_events):
        try:
            event = EVENT_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            problems += _pydantic_problems(index, exc, raw.get("type"))
            continue
        problems += _limit_problems(index, event, limits, now)
        events.append(event)
    if problems:
        metrics.BATCHES_REJECTED.labels("invalid").inc()
        bad = sorted({p.index for p in problems})
        raise ValidationFailed(
            f"{len(bad)} of {len(raw_events)} events are invalid; nothing was stored",
            invalid_indexes=bad,
            errors=[p.model_dump() for p in problems],
        )
    return events


def normalise_query(query: str) -> str:
    """Search terms group by this: case-folded, inner whitespace collapsed, trimmed."""
    return " ".join(query.split()).casefold()


def _columns(
    events: Sequence[Event], user_id: uuid.UUID | None, anonymous_id: str | None
) -> repository.EventColumns:
    cols = repository.EventColumns()
    for event in events:
        cols.type.append(event.type)
        cols.occurred_at.append(event.occurred_at)
        cols.user_id.append(user_id)
        cols.anonymous_id.append(anonymous_id)
        cols.name.append(event.name if isinstance(event, Custom) else None)
        cols.path.append(event.path if isinstance(event, PageView) else None)
        search_id = event.search_id if isinstance(event, Search | SearchClick) else None
        cols.search_id.append(search_id)
        cols.query.append(normalise_query(event.query) if isinstance(event, Search) else None)
        cols.result_count.append(event.result_count if isinstance(event, Search) else None)
        cols.product_id.append(event.product_id if isinstance(event, SearchClick) else None)
        cols.position.append(event.position if isinstance(event, SearchClick) else None)
        props = event.properties if isinstance(event, PageView | CheckoutStarted | Custom) else None
        cols.properties.append(None if props is None else json.dumps(props, allow_nan=False))
    return cols


async def ingest(
    session: AsyncSession,
    raw_events: Sequence[dict[str, Any]],
    *,
    user_id: uuid.UUID | None,
    anonymous_id: str | None,
    limits: IngestLimits,
) -> dict[str, int]:
    """Validate the whole batch, then store it with one statement. Returns counts per type."""
    if user_id is None and anonymous_id is None:
        metrics.BATCHES_REJECTED.labels("no_actor").inc()
        raise ValidationFailed(
            "Send an access token or an anonymous_id: every event needs someone who did it",
            errors=[{"index": None, "field": "anonymous_id", "reason": "required"}],
        )
    events = validate_batch(raw_events, limits)
    await repository.insert_events(session, _columns(events, user_id, anonymous_id))
    counts: dict[str, int] = {}
    for event in events:
        counts[event.type] = counts.get(event.type, 0) + 1
    return counts


def count_stored(counts: dict[str, int]) -> None:
    """Count stored events for Prometheus (call once the batch is committed)."""
    for event_type, n in counts.items():
        metrics.EVENTS.labels(event_type).inc(n)


# -- facts from other modules (called by the listeners) ------------------------------------------


async def record_signup_started(
    session: AsyncSession, user_id: uuid.UUID, at: datetime | None
) -> None:
    await repository.record_signup_started(session, user_id, at)


async def record_signup_verified(
    session: AsyncSession, user_id: uuid.UUID, at: datetime | None
) -> None:
    await repository.record_signup_verified(session, user_id, at)


async def record_checkout(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    paid: bool,
    amount: int,
    currency: str,
    at: datetime | None,
) -> None:
    await repository.record_checkout(
        session,
        order_id=order_id,
        user_id=user_id,
        outcome="paid" if paid else "failed",
        amount=amount,
        currency=currency,
        at=at,
    )


# -- reports ------------------------------------------------------------------------------------


class Bulkhead:
    """At most ``size`` report queries at once in this process; the next one is refused at once.

    Refusing instead of queueing is the point: a queue of slow reports would hold requests, and
    with them connections and memory, that the rest of the API (checkout first) needs.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self._slots = asyncio.Semaphore(size)

    @asynccontextmanager
    async def slot(self, report: str) -> AsyncIterator[None]:
        if self._slots.locked():
            metrics.REPORTS_REJECTED.labels(report, "bulkhead").inc()
            raise ServiceUnavailable(
                f"{self.size} reports are running; retry in a moment",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                retry_after=RETRY_AFTER_SECONDS,
            )
        # Not locked, so this returns without suspending: the check and the take are atomic.
        await self._slots.acquire()
        self.in_use += 1
        metrics.REPORTS_IN_FLIGHT.inc()
        try:
            yield
        finally:
            metrics.REPORTS_IN_FLIGHT.dec()
            self.in_use -= 1
            self._slots.release()


@asynccontextmanager
async def _report(session: AsyncSession, report: str, timeout_ms: int) -> AsyncIterator[None]:
    """Run a report's statements under a transaction-local timeout; map cancellations."""
    started = time.perf_counter()
    try:
        await repository.set_statement_timeout(session, timeout_ms)
        yield
    except DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate == _QUERY_CANCELED:
            metrics.REPORTS_REJECTED.labels(report, "timeout").inc()
            raise GatewayTimeout(
                f"The report took longer than {timeout_ms} ms and was cancelled; "
                "narrow the time range or use a coarser interval",
                timeout_ms=timeout_ms,
            ) from exc
        if sqlstate == _RECOVERY_CONFLICT:
            metrics.REPORTS_REJECTED.labels(report, "conflict").inc()
            raise ServiceUnavailable(
                "The replica cancelled the report to apply changes; retry",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                retry_after=RETRY_AFTER_SECONDS,
            ) from exc
        raise
    finally:
        metrics.REPORT_SECONDS.labels(report).observe(time.perf_counter() - started)


_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def _truncate(moment: datetime, interval: Interval) -> datetime:
    """What ``date_trunc(interval, moment, 'UTC')`` returns (weeks start on Monday)."""
    moment = moment.astimezone(UTC)
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if interval == "day" else day - timedelta(days=day.weekday())


def bucket_starts(start: datetime, end: datetime, interval: Interval) -> list[datetime]:
    first = _truncate(start, interval)
    return [first + i * _STEP[interval] for i in range(math.ceil((end - first) / _STEP[interval]))]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _bucket(
    start: datetime,
    end: datetime,
    signups: Sequence[int],
    checkouts: Sequence[int],
    searches: Sequence[int],
) -> FunnelBucket:
    started, verified = signups
    paid, failed = checkouts
    searched, clicked = searches
    return FunnelBucket(
        start=start,
        end=end,
        signups_started=started,
        signups_verified=verified,
        signup_completion_rate=_rate(verified, started),
        checkouts_paid=paid,
        checkouts_failed=failed,
        checkout_success_rate=_rate(paid, paid + failed),
        searches=searched,
        searches_clicked=clicked,
        search_to_click_ratio=_rate(clicked, searched),
    )


FUNNEL_DEFINITIONS = {
    "signup_completion_rate": (
        "signups started in the interval that have verified their email (at any time), "
        "divided by signups started in the interval"
    ),
    "checkout_success_rate": (
        "orders whose payment succeeded in the interval, divided by orders whose outcome "
        "(paid, or failed and not paid since) fell in the interval"
    ),
    "search_to_click_ratio": (
        "searches made in the interval with at least one result click (at any time), divided by "
        "searches made in the interval"
    ),
}


def check_window(start: datetime, end: datetime, settings: Settings) -> None:
    if start >= end:
        raise ValidationFailed(
            "'from' must be before 'to'",
            errors=[{"loc": ["query", "from"], "field": "from", "msg": "must be before 'to'"}],
        )
    max_range = timedelta(days=settings.analytics_report_max_range_days)
    if end - start > max_range:
        raise ValidationFailed(
            f"The range is longer than {max_range.days} days",
            errors=[{"loc": ["query", "to"], "field": "to", "msg": "range too long"}],
        )


async def funnel(
    session: AsyncSession, start: datetime, end: datetime, interval: Interval, timeout_ms: int
) -> FunnelReport:
    starts = bucket_starts(start, end, interval)
    if len(starts) > MAX_BUCKETS:
        raise ValidationFailed(
            f"{len(starts)} intervals; at most {MAX_BUCKETS}: choose a coarser interval",
            errors=[{"loc": ["query", "interval"], "field": "interval", "msg": "too fine"}],
        )
    async with _report(session, "funnel", timeout_ms):
        signups = await repository.funnel_signups(session, interval, start, end)
        checkouts = await repository.funnel_checkouts(session, interval, start, end)
        searches = await repository.funnel_searches(session, interval, start, end)
    by_bucket: dict[datetime, list[int]] = {s: [0] * 6 for s in starts}
    for offset, rows in ((0, signups), (2, checkouts), (4, searches)):
        for bucket, a, b in rows:
            slot = by_bucket.setdefault(bucket.astimezone(UTC), [0] * 6)
            slot[offset], slot[offset + 1] = a, b
    step = _STEP[interval]
    buckets = [
        _bucket(max(s, start), min(s + step, end), v[0:2], v[2:4], v[4:6])
        for s, v in sorted(by_bucket.items())
    ]
    sums = [sum(v[i] for v in by_bucket.values()) for i in range(6)]
    return FunnelReport(
        from_=start,
        to=end,
        interval=interval,
        definitions=FUNNEL_DEFINITIONS,
        buckets=buckets,
        totals=_bucket(start, end, sums[0:2], sums[2:4], sums[4:6]),
    )


async def top_search_terms(
    session: AsyncSession, start: datetime, end: datetime, limit: int, timeout_ms: int
) -> SearchTermsReport:
    async with _report(session, "search_terms", timeout_ms):
        rows = await repository.top_search_terms(session, start, end, limit)
    return SearchTermsReport(
        from_=start,
        to=end,
        terms=[SearchTerm(term=t, searches=n, zero_result_searches=z) for t, n, z in rows],
    )


async def most_clicked_products(
    session: AsyncSession, start: datetime, end: datetime, limit: int, timeout_ms: int
) -> ClickedProductsReport:
    async with _report(session, "clicked_products", timeout_ms):
        rows = await repository.most_clicked_products(session, start, end, limit)
    return ClickedProductsReport(
        from_=start,
        to=end,
        products=[ClickedProduct(product_id=p, clicks=n, mean_position=m) for p, n, m in rows],
    )
