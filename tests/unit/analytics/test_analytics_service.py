"""analytics' use cases against an in-memory repository: ingestion, batch keys, reports, facts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from app.modules.analytics.repository import EventColumns
from app.modules.analytics.service import (
    FactsService,
    IdempotencyKeyReused,
    IngestionService,
    IngestLimits,
    ReportsService,
)
from app.platform.db.read_session import AsyncReadSession
from app.platform.errors import ValidationFailed
from tests.unit.fakes import FakeSession, unit_settings

LIMITS = IngestLimits.from_settings(unit_settings())
SEARCH_ID = uuid.UUID(int=1)
START = datetime(2026, 11, 30, tzinfo=UTC)
END = datetime(2026, 12, 2, tzinfo=UTC)


@dataclass
class MemoryAnalytics:
    """analytics' queries over lists (the ingestion, reports and facts ports)."""

    batches: list[EventColumns] = field(default_factory=list)
    keys: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    timeouts: list[int] = field(default_factory=list)
    facts: list[tuple[str, uuid.UUID, str | None]] = field(default_factory=list)
    day_rows: dict[str, list[tuple[datetime, int, int]]] = field(default_factory=dict)

    async def insert_events(self, session: AsyncReadSession, columns: EventColumns) -> None:
        self.batches.append(columns)

    async def claim_batch_key(
        self,
        session: AsyncReadSession,
        *,
        scope: str,
        key: str,
        fingerprint: str,
        accepted: int,
        ttl: float,
    ) -> bool:
        if (scope, key) in self.keys:
            return False
        self.keys[(scope, key)] = (fingerprint, accepted)
        return True

    async def get_batch_key(
        self, session: AsyncReadSession, *, scope: str, key: str
    ) -> tuple[str, int] | None:
        return self.keys.get((scope, key))

    async def purge_batch_keys(self, session: AsyncReadSession, limit: int) -> int:
        gone = list(self.keys)[:limit]
        for k in gone:
            del self.keys[k]
        return len(gone)

    async def set_statement_timeout(self, session: AsyncReadSession, timeout_ms: int) -> None:
        self.timeouts.append(timeout_ms)

    async def _day(self, name: str) -> Sequence[Any]:
        return self.day_rows.get(name, [])

    async def funnel_signups(
        self, session: AsyncReadSession, unit: str, start: datetime, end: datetime
    ) -> Sequence[Any]:
        return await self._day("signups")

    async def funnel_checkouts(
        self, session: AsyncReadSession, unit: str, start: datetime, end: datetime
    ) -> Sequence[Any]:
        return await self._day("checkouts")

    async def funnel_searches(
        self, session: AsyncReadSession, unit: str, start: datetime, end: datetime
    ) -> Sequence[Any]:
        return await self._day("searches")

    async def top_search_terms(
        self, session: AsyncReadSession, start: datetime, end: datetime, limit: int
    ) -> Sequence[Any]:
        return [("lamp", 3, 1)][:limit]

    async def most_clicked_products(
        self, session: AsyncReadSession, start: datetime, end: datetime, limit: int
    ) -> Sequence[Any]:
        return [(SEARCH_ID, 2, 1.5)][:limit]

    async def record_signup_started(
        self, session: AsyncReadSession, user_id: uuid.UUID, at: datetime | None
    ) -> None:
        self.facts.append(("started", user_id, None))

    async def record_signup_verified(
        self, session: AsyncReadSession, user_id: uuid.UUID, at: datetime | None
    ) -> None:
        self.facts.append(("verified", user_id, None))

    async def record_checkout(
        self,
        session: AsyncReadSession,
        *,
        order_id: uuid.UUID,
        user_id: uuid.UUID,
        outcome: str,
        amount: int,
        currency: str,
        at: datetime | None,
    ) -> None:
        self.facts.append(("checkout", order_id, outcome))


@pytest.fixture
def repo() -> MemoryAnalytics:
    return MemoryAnalytics()


@pytest.fixture
def ingestion(repo: MemoryAnalytics) -> IngestionService:
    return IngestionService(FakeSession().as_session(), repo=repo)


def _search(query: str = "  Desk   LAMP ") -> dict[str, Any]:
    return {"type": "search", "search_id": str(SEARCH_ID), "query": query, "result_count": 4}


async def test_a_batch_is_stored_whole_in_one_insert_with_normalised_terms(
    ingestion: IngestionService, repo: MemoryAnalytics
) -> None:
    events = [_search(), {"type": "page_view", "path": "/pricing"}]
    result = await ingestion.ingest(events, user_id=None, anonymous_id="dev-1", limits=LIMITS)
    assert (result.accepted, result.counts, result.replayed) == (
        2,
        {"search": 1, "page_view": 1},
        False,
    )
    [batch] = repo.batches
    assert batch.type == ["search", "page_view"]
    assert batch.query == ["desk lamp", None]
    assert batch.anonymous_id == ["dev-1", "dev-1"]


async def test_a_batch_with_one_bad_event_stores_nothing_and_names_it(
    ingestion: IngestionService, repo: MemoryAnalytics
) -> None:
    events = [_search(), {"type": "page_view", "path": ""}, _search(query="   ")]
    with pytest.raises(ValidationFailed) as refused:
        await ingestion.ingest(events, user_id=None, anonymous_id="dev-1", limits=LIMITS)
    assert refused.value.extensions["invalid_indexes"] == [1, 2]
    assert repo.batches == []


async def test_a_batch_needs_someone_who_did_it(ingestion: IngestionService) -> None:
    with pytest.raises(ValidationFailed, match="anonymous_id"):
        await ingestion.ingest([_search()], user_id=None, anonymous_id=None, limits=LIMITS)


async def test_a_retried_batch_key_is_answered_once_and_another_body_is_refused(
    ingestion: IngestionService, repo: MemoryAnalytics
) -> None:
    user = uuid.UUID(int=5)
    first = await ingestion.ingest(
        [_search()], user_id=user, anonymous_id=None, limits=LIMITS, key="b1"
    )
    again = await ingestion.ingest(
        [_search()], user_id=user, anonymous_id=None, limits=LIMITS, key="b1"
    )
    assert (first.replayed, again.replayed, again.accepted, again.counts) == (False, True, 1, {})
    assert len(repo.batches) == 1
    with pytest.raises(IdempotencyKeyReused):
        await ingestion.ingest(
            [_search("chair")], user_id=user, anonymous_id=None, limits=LIMITS, key="b1"
        )
    assert await ingestion.purge_expired_keys(limit=10) == 1


async def test_the_funnel_fills_empty_days_and_sums_the_totals(repo: MemoryAnalytics) -> None:
    day = datetime(2026, 12, 1, tzinfo=UTC)
    repo.day_rows = {"signups": [(day, 4, 2)], "checkouts": [(day, 3, 1)], "searches": []}
    report = await ReportsService(FakeSession().as_session(), repo=repo).funnel(
        START, END, "day", 5000
    )
    assert repo.timeouts == [5000]
    assert [b.start.day for b in report.buckets] == [30, 1]
    empty, full = report.buckets
    assert (empty.signups_started, empty.signup_completion_rate) == (0, None)
    assert (full.signup_completion_rate, full.checkout_success_rate) == (0.5, 0.75)
    assert (report.totals.signups_started, report.totals.checkouts_failed) == (4, 1)


async def test_reports_without_isolation_set_no_timeout(repo: MemoryAnalytics) -> None:
    reports = ReportsService(FakeSession().as_session(), repo=repo)
    terms = await reports.top_search_terms(START, END, 10, None)
    clicked = await reports.most_clicked_products(START, END, 10, None)
    assert repo.timeouts == []
    assert [(t.term, t.zero_result_searches) for t in terms.terms] == [("lamp", 1)]
    assert [(p.product_id, p.mean_position) for p in clicked.products] == [(SEARCH_ID, 1.5)]


async def test_checkout_facts_record_their_outcome(repo: MemoryAnalytics) -> None:
    facts = FactsService(FakeSession().as_session(), repo=repo)
    order, user = uuid.UUID(int=9), uuid.UUID(int=5)
    await facts.record_signup_started(user, None)
    for paid in (False, True):
        await facts.record_checkout(
            order_id=order, user_id=user, paid=paid, amount=100, currency="EUR", at=None
        )
    assert repo.facts == [
        ("started", user, None),
        ("checkout", order, "failed"),
        ("checkout", order, "paid"),
    ]
