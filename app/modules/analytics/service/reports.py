"""Report use cases: the funnel and the top lists, under a timeout and behind a bulkhead."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, Protocol

from sqlalchemy.exc import DBAPIError

from app.modules.analytics import metrics, repository
from app.modules.analytics.schemas import (
    ClickedProduct,
    ClickedProductsReport,
    FunnelBucket,
    FunnelReport,
    Interval,
    SearchTerm,
    SearchTermsReport,
)
from app.platform.config import Settings
from app.platform.db.read_session import AsyncReadSession
from app.platform.errors import GatewayTimeout, ServiceUnavailable, ValidationFailed

MAX_BUCKETS = 1000
RETRY_AFTER_SECONDS = 1
# A report's rows are turned into its answer in slices this long, the event loop serving other
# requests (checkout first) between slices: a 1000-bucket funnel would otherwise hold the loop
# for its whole assembly (~10 ms quiet, several times that on a loaded machine).
YIELD_EVERY = 100

_QUERY_CANCELED = "57014"  # statement_timeout (or a cancel request)
_RECOVERY_CONFLICT = "40001"  # a replica cancelled the query to replay WAL


class Bulkhead:
    """At most ``size`` report queries at once in this process; the next one is refused at once.

    Refusing instead of queueing is the point: a queue of slow reports would hold requests, and
    with them connections and memory, that the rest of the API (checkout first) needs.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self._slots = asyncio.Semaphore(size)

    @property
    def full(self) -> bool:
        return self._slots.locked()

    def refuse(self, report: str) -> NoReturn:
        metrics.REPORTS_REJECTED.labels(report, "bulkhead").inc()
        raise ServiceUnavailable(
            f"{self.size} reports are running; retry in a moment",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            retry_after=RETRY_AFTER_SECONDS,
        )

    @asynccontextmanager
    async def slot(self, report: str) -> AsyncIterator[None]:
        if self._slots.locked():
            self.refuse(report)
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


class ReportsRepository(Protocol):
    """The reports' queries (``app.modules.analytics.repository``; fakes in unit tests)."""

    async def set_statement_timeout(self, session: AsyncReadSession, timeout_ms: int) -> None: ...

    async def funnel_signups(
        self, session: AsyncReadSession, unit: str, start: datetime, end: datetime
    ) -> Sequence[Any]: ...

    async def funnel_checkouts(
        self, session: AsyncReadSession, unit: str, start: datetime, end: datetime
    ) -> Sequence[Any]: ...

    async def funnel_searches(
        self, session: AsyncReadSession, unit: str, start: datetime, end: datetime
    ) -> Sequence[Any]: ...

    async def top_search_terms(
        self, session: AsyncReadSession, start: datetime, end: datetime, limit: int
    ) -> Sequence[Any]: ...

    async def most_clicked_products(
        self, session: AsyncReadSession, start: datetime, end: datetime, limit: int
    ) -> Sequence[Any]: ...


@asynccontextmanager
async def _report(
    session: AsyncReadSession, repository: ReportsRepository, report: str, timeout_ms: int | None
) -> AsyncIterator[None]:
    """Run a report's statements under a transaction-local timeout; map cancellations.

    ``timeout_ms=None`` (isolation "none") sets nothing: the connection's own timeout applies.
    """
    started = time.perf_counter()
    try:
        if timeout_ms is not None:
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
    # Our own ints and datetimes: validating them again would be most of a large report's CPU.
    return FunnelBucket.model_construct(
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


async def _yield_every(count: int) -> AsyncIterator[int]:
    """0..count-1, handing the event loop to other requests every ``YIELD_EVERY`` items."""
    for i in range(count):
        if i and i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        yield i


class ReportsService:
    """The admins' reports, on the report session (the replica, or the primary without
    isolation), each under its statement timeout."""

    def __init__(self, session: AsyncReadSession, *, repo: ReportsRepository = repository) -> None:
        self.session = session
        self.repo = repo

    async def funnel(
        self, start: datetime, end: datetime, interval: Interval, timeout_ms: int | None
    ) -> FunnelReport:
        starts = bucket_starts(start, end, interval)
        if len(starts) > MAX_BUCKETS:
            raise ValidationFailed(
                f"{len(starts)} intervals; at most {MAX_BUCKETS}: choose a coarser interval",
                errors=[{"loc": ["query", "interval"], "field": "interval", "msg": "too fine"}],
            )
        session, repo = self.session, self.repo
        async with _report(session, repo, "funnel", timeout_ms):
            signups = await repo.funnel_signups(session, interval, start, end)
            checkouts = await repo.funnel_checkouts(session, interval, start, end)
            searches = await repo.funnel_searches(session, interval, start, end)
        return await _assemble(start, end, interval, starts, (signups, checkouts, searches))

    async def top_search_terms(
        self, start: datetime, end: datetime, limit: int, timeout_ms: int | None
    ) -> SearchTermsReport:
        async with _report(self.session, self.repo, "search_terms", timeout_ms):
            rows = await self.repo.top_search_terms(self.session, start, end, limit)
        return SearchTermsReport(
            from_=start,
            to=end,
            terms=[SearchTerm(term=t, searches=n, zero_result_searches=z) for t, n, z in rows],
        )

    async def most_clicked_products(
        self, start: datetime, end: datetime, limit: int, timeout_ms: int | None
    ) -> ClickedProductsReport:
        async with _report(self.session, self.repo, "clicked_products", timeout_ms):
            rows = await self.repo.most_clicked_products(self.session, start, end, limit)
        return ClickedProductsReport(
            from_=start,
            to=end,
            products=[ClickedProduct(product_id=p, clicks=n, mean_position=m) for p, n, m in rows],
        )


async def _assemble(
    start: datetime,
    end: datetime,
    interval: Interval,
    starts: list[datetime],
    rows_of: tuple[Sequence[Any], Sequence[Any], Sequence[Any]],
) -> FunnelReport:
    """The funnel's buckets from its three row sets, yielding the loop as it goes."""
    by_bucket: dict[datetime, list[int]] = {s: [0] * 6 for s in starts}
    for offset, rows in zip((0, 2, 4), rows_of, strict=True):
        async for i in _yield_every(len(rows)):
            bucket, a, b = rows[i]
            slot = by_bucket.setdefault(bucket.astimezone(UTC), [0] * 6)
            slot[offset], slot[offset + 1] = a, b
    step = _STEP[interval]
    ordered = sorted(by_bucket.items())
    buckets = []
    async for i in _yield_every(len(ordered)):
        s, v = ordered[i]
        buckets.append(_bucket(max(s, start), min(s + step, end), v[0:2], v[2:4], v[4:6]))
    sums = [sum(v[i] for v in by_bucket.values()) for i in range(6)]
    return FunnelReport.model_construct(
        from_=start,
        to=end,
        interval=interval,
        definitions=FUNNEL_DEFINITIONS,
        buckets=buckets,
        totals=_bucket(start, end, sums[0:2], sums[2:4], sums[4:6]),
    )
