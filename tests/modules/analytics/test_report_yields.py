"""A large report hands the event loop back while it turns its rows into an answer (no database).

The session is a stand-in that answers each report statement at once with a thousand rows,
without suspending: whatever else gets to run meanwhile, the report's own code let it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from app.modules.analytics import repository, service
from app.modules.analytics.service.reports import MAX_BUCKETS, YIELD_EVERY

START = datetime(2024, 1, 1, tzinfo=UTC)
HOURS = MAX_BUCKETS


class _Rows:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def all(self) -> list[tuple[Any, ...]]:
        return self._rows


class _InstantSession:
    """Answers the funnel's statements from memory; never suspends."""

    def __init__(self) -> None:
        hours = [START + timedelta(hours=i) for i in range(HOURS)]
        self.rows = {
            repository.FUNNEL_SIGNUPS: [(h, 4, 3) for h in hours],
            repository.FUNNEL_CHECKOUTS: [(h, 2, 1) for h in hours],
            repository.FUNNEL_SEARCHES: [(h, 10, 5) for h in hours],
        }

    async def execute(self, statement: Any, params: Any = None) -> _Rows:
        return _Rows(self.rows.get(statement, [(None, None, None)]))


async def test_a_thousand_bucket_funnel_lets_other_tasks_run_while_it_is_assembled() -> None:
    ticks = 0
    stop = False

    async def other_request() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0)

    session: Any = _InstantSession()
    end = START + timedelta(hours=HOURS)
    other = asyncio.create_task(other_request())
    await asyncio.sleep(0)  # the other task is running
    ticks = 0
    report = await service.ReportsService(session).funnel(START, end, "hour", 5000)
    stop = True
    await other

    assert len(report.buckets) == HOURS
    assert report.totals.signups_started == 4 * HOURS
    assert report.buckets[7].checkout_success_rate == 2 / 3
    # Three statements' rows and the buckets, 4,000 items in slices of YIELD_EVERY: the other
    # task ran between the slices (a report that never yields lets it run 0 times).
    assert YIELD_EVERY <= 250
    assert ticks >= 4 * HOURS // 250


async def test_the_assembled_report_serialises_as_before() -> None:
    """Built without re-validation, the report still has every field, typed, and its alias."""
    session: Any = _InstantSession()
    end = START + timedelta(hours=3)
    report = await service.ReportsService(session).funnel(START, end, "hour", None)
    dumped = report.model_dump(mode="json", by_alias=True)
    assert dumped["from"] == "2024-01-01T00:00:00Z"
    assert dumped["buckets"][0] == {
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-01-01T01:00:00Z",
        "signups_started": 4,
        "signups_verified": 3,
        "signup_completion_rate": 0.75,
        "checkouts_paid": 2,
        "checkouts_failed": 1,
        "checkout_success_rate": 2 / 3,
        "searches": 10,
        "searches_clicked": 5,
        "search_to_click_ratio": 0.5,
    }
