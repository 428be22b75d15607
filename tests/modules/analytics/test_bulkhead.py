"""Reports behind the bulkhead and the statement timeout, made slow for real on the replica.

A report is held up the way a real one can be: the primary takes an ACCESS EXCLUSIVE lock on
analytics_signup, the replica replays it, and report queries on the replica wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.platform.config import Settings
from tests.helpers import make_settings, serving, wait_for
from tests.modules.analytics.conftest import bearer, replica_caught_up
from tools.pgstack import Stack

FUNNEL = "/v1/analytics/reports/funnel"
PARAMS = {"from": "2022-01-01T00:00:00Z", "to": "2022-01-08T00:00:00Z", "interval": "day"}

_WAITING_ON_REPLICA = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND state = 'active' "
    "AND application_name LIKE '%:replica' AND query LIKE '%analytics_signup%'"
)


@asynccontextmanager
async def _app(
    stack: Stack, **overrides: object
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Settings]]:
    # One replica: the lock that blocks reports and the count of waiting ones are on it.
    settings = make_settings(stack, replica_database_url=stack.replica_url, **overrides)
    application = create_app(settings)
    async with serving(application, headers=bearer(settings, "admin")) as c:
        yield application, c, settings


@asynccontextmanager
async def _replica_blocked(stack: Stack) -> AsyncIterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on analytics_signup, replayed on the replica, for the block."""
    await replica_caught_up(stack)
    engine = create_async_engine(stack.primary_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("LOCK TABLE analytics_signup IN ACCESS EXCLUSIVE MODE"))

            async def replayed() -> bool:
                # The lock's WAL record sits in the primary's buffers until something flushes
                # them; committing a transaction with an xid makes the WAL writer do so.
                stack.primary.psql("SELECT txid_current()", db="app")
                held = stack.replica.psql(
                    "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                    "AND relation = 'analytics_signup'::regclass",
                    db="app",
                )
                return held != "0"

            await wait_for(replayed, timeout=15)
            try:
                yield
            finally:
                await conn.rollback()
    finally:
        await engine.dispose()


def _rejected(reason: str) -> float:
    labels = {"report": "funnel", "reason": reason}
    return REGISTRY.get_sample_value("analytics_reports_rejected_total", labels) or 0.0


async def test_a_full_bulkhead_answers_503_at_once(migrated: Stack) -> None:
    async with _app(migrated, analytics_report_max_concurrency=2) as (app, client, _):
        before = _rejected("bulkhead")
        async with _replica_blocked(migrated):
            slow = [asyncio.create_task(client.get(FUNNEL, params=PARAMS)) for _ in range(2)]

            async def both_waiting() -> bool:
                return migrated.replica.psql(_WAITING_ON_REPLICA, db="app") == "2"

            await wait_for(both_waiting, timeout=15)
            assert app.state.analytics_report_bulkhead.in_use == 2

            # At once: refused while the two are still waiting (what a refusal costs is
            # asserted by counting database work, in test_refusal.py, not by a stopwatch).
            response = await client.get(FUNNEL, params=PARAMS)

            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "/problems/service-unavailable"
            assert _rejected("bulkhead") == before + 1
            assert not any(task.done() for task in slow)
        # Unblocked, the two running reports finish, and the bulkhead has room again.
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]
        assert app.state.analytics_report_bulkhead.in_use == 0
        assert (await client.get(FUNNEL, params=PARAMS)).status_code == 200


async def test_a_report_over_the_timeout_is_504_and_cancelled_on_the_replica(
    migrated: Stack,
) -> None:
    async with _app(migrated, analytics_report_statement_timeout_ms=300) as (app, client, _):
        before = _rejected("timeout")
        async with _replica_blocked(migrated):
            started = time.perf_counter()
            response = await client.get(FUNNEL, params=PARAMS)
            elapsed = time.perf_counter() - started

            assert response.status_code == 504, response.text
            assert response.headers["content-type"] == "application/problem+json"
            body = response.json()
            assert body["type"] == "/problems/timeout"
            assert body["timeout_ms"] == 300
            assert 0.3 <= elapsed < 5
            assert _rejected("timeout") == before + 1
            # Still blocked, yet nothing of the report is left waiting on the replica: the server
            # cancelled the statement (a client-side timeout would leave it there).
            assert migrated.replica.psql(_WAITING_ON_REPLICA, db="app") == "0"
        assert app.state.analytics_report_bulkhead.in_use == 0
        # The connection went back to the pool clean: the next report on it works.
        assert (await client.get(FUNNEL, params=PARAMS)).status_code == 200


async def test_the_report_timeout_does_not_leak_to_other_reads(migrated: Stack) -> None:
    async with _app(migrated, analytics_report_statement_timeout_ms=1234, db_pool_size=1,
                    db_max_overflow=0) as (app, client, _):  # fmt: skip
        assert (await client.get(FUNNEL, params=PARAMS)).status_code == 200
        async with app.state.db.read_session() as session:  # the same pooled connection
            timeout = await session.scalar(text("SHOW statement_timeout"))
        assert timeout == "30s"
