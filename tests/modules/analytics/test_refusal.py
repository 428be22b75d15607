"""A full bulkhead refuses before any work; isolation "none" is the real, unprotected "before".

The refusal is checked by what it costs the databases (no statement, no pool checkout) and by
what the caller sees (503 problem+json with Retry-After), never by a stopwatch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.main import create_app
from app.modules.analytics.service import Bulkhead
from app.platform.config import Settings
from tests.helpers import make_settings, serving, wait_for
from tests.modules.analytics.conftest import bearer
from tools.pgstack import Stack

FUNNEL = "/v1/analytics/reports/funnel"
TERMS = "/v1/analytics/reports/search-terms"
PRODUCTS = "/v1/analytics/reports/clicked-products"
PARAMS = {"from": "2022-02-01T00:00:00Z", "to": "2022-02-08T00:00:00Z", "interval": "day"}

# Nothing in the background touches a database while a test counts: no dispatcher, and the
# replica's health is checked once at start-up only.
_QUIET = {"events_dispatcher_enabled": False, "db_replica_check_interval_seconds": 3600.0}


@asynccontextmanager
async def _serving(
    stack: Stack, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Settings]]:
    settings = make_settings(stack, **{**_QUIET, **overrides})
    application = create_app(settings)
    async with serving(application) as c:
        yield application, c, settings


class _DatabaseWork:
    """Statements run and pool checkouts made on the app's engines while counting."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.checkouts = 0

    def statement(self, _conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        self.statements.append(sql)

    def checkout(self, *_: Any) -> None:
        self.checkouts += 1


@contextmanager
def _counting(app: FastAPI) -> Iterator[_DatabaseWork]:
    db = app.state.db
    engines: list[AsyncEngine] = [e for e in (db.primary, db.replica) if e is not None]
    work = _DatabaseWork()
    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", work.statement)
        event.listen(engine.sync_engine, "checkout", work.checkout)
    try:
        yield work
    finally:
        for engine in engines:
            event.remove(engine.sync_engine, "before_cursor_execute", work.statement)
            event.remove(engine.sync_engine, "checkout", work.checkout)


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/service-unavailable"
    assert body["retry_after"] == 1
    assert body["instance"] == response.request.url.path


async def test_a_refused_report_does_no_database_work_and_no_other_work(
    migrated: Stack,
) -> None:
    async with _serving(migrated, analytics_report_max_concurrency=1) as (app, client, settings):
        admin = bearer(settings, "admin")
        assert (await client.get(FUNNEL, params=PARAMS, headers=admin)).status_code == 200
        bulkhead = app.state.analytics_report_bulkhead
        async with bulkhead.slot("funnel"):  # the one slot, taken as a running report takes it
            with _counting(app) as work:
                refused = [
                    await client.get(FUNNEL, params=PARAMS, headers=admin),
                    await client.get(TERMS, params=PARAMS, headers=admin),
                    await client.get(PRODUCTS, params=PARAMS, headers=admin),
                    # Refused before the token is verified and before the window is parsed:
                    # with no slot free, neither a stranger nor a bad request gets any further.
                    await client.get(FUNNEL, params=PARAMS),
                    await client.get(FUNNEL, params={**PARAMS, "to": "not a time"}, headers=admin),
                ]
            for response in refused:
                _assert_refused(response)
            assert work.statements == []
            assert work.checkouts == 0
        # A slot free again: the same requests get their usual answers.
        assert (await client.get(FUNNEL, params=PARAMS)).status_code == 401
        bad = await client.get(FUNNEL, params={**PARAMS, "to": "not a time"}, headers=admin)
        assert bad.status_code == 422
        assert (await client.get(FUNNEL, params=PARAMS, headers=admin)).status_code == 200


async def test_a_slot_taken_between_the_checks_is_still_refused_before_the_session(
    migrated: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The route's check saw a free slot, another report took it: the slot dependency refuses."""
    async with _serving(migrated, analytics_report_max_concurrency=1) as (app, client, settings):
        admin = bearer(settings, "admin")
        assert (await client.get(FUNNEL, params=PARAMS, headers=admin)).status_code == 200
        async with app.state.analytics_report_bulkhead.slot("funnel"):
            # The route's early check sees room, as it would just before the last slot went.
            monkeypatch.setattr(Bulkhead, "full", property(lambda _: False))
            with _counting(app) as work:
                response = await client.get(FUNNEL, params=PARAMS, headers=admin)
        _assert_refused(response)
        # Authentication comes first on this path (an admin route asks whether the token is
        # still current: one statement); nothing of the report's own runs.
        assert [sql for sql in work.statements if "auth_token_epoch" not in sql] == []
        assert work.checkouts <= 1


_ON_PRIMARY = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND state = 'active' "
    "AND wait_event_type = 'Lock' AND application_name LIKE '%:primary' "
    "AND query LIKE '%analytics_signup%'"
)


async def test_isolation_none_runs_reports_on_the_primary_without_bulkhead_or_timeout(
    migrated: Stack,
) -> None:
    overrides = {
        "analytics_report_isolation": "none",
        "analytics_report_max_concurrency": 1,
        "analytics_report_statement_timeout_ms": 200,
    }
    async with _serving(migrated, **overrides) as (app, client, settings):
        client.headers.update(bearer(settings, "admin"))
        engine = create_async_engine(migrated.primary_url)
        try:
            async with engine.connect() as conn:
                # Reports on the primary wait for this lock; on the replica they would not.
                await conn.execute(text("LOCK TABLE analytics_signup IN ACCESS EXCLUSIVE MODE"))
                slow = [asyncio.create_task(client.get(FUNNEL, params=PARAMS)) for _ in range(3)]

                async def all_waiting_on_the_primary() -> bool:
                    return migrated.primary.psql(_ON_PRIMARY, db="app") == "3"

                # Three at once past a bulkhead of one: there is none.
                await wait_for(all_waiting_on_the_primary, timeout=15)
                # Five times the report timeout later they still wait: none was set.
                await asyncio.sleep(1.0)
                assert migrated.primary.psql(_ON_PRIMARY, db="app") == "3"
                assert not any(task.done() for task in slow)
                await conn.rollback()
        finally:
            await engine.dispose()
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200, 200]
        assert getattr(app.state, "analytics_report_bulkhead", None) is None


def test_isolation_none_is_refused_outside_development_and_test() -> None:
    strong = {
        "secret_key": "s" * 40,
        "metrics_token": "m" * 40,
        "payments_webhook_secret": "w" * 40,
        "email_backend": "smtp",
        "public_base_url": "https://shop.example.com",
        "payments_allow_fake_provider": True,
    }
    with pytest.raises(ValidationError, match="APP_ANALYTICS_REPORT_ISOLATION=none"):
        Settings(_env_file=None, env="staging", analytics_report_isolation="none", **strong)  # type: ignore[arg-type]
    assert Settings(_env_file=None, env="staging", **strong).analytics_report_isolation == (  # type: ignore[arg-type]
        "bulkhead"
    )
