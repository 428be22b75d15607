"""On a database seeded by ``python -m app seed`` (200,000 events): the seed's output, the plans
of every report query, and a real report that outruns its statement timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.modules.analytics import repository
from app.platform.db.migrations import alembic_config
from app.seed.world import PRESETS, build_world, event_day, event_pools
from tests.helpers import make_settings
from tests.modules.analytics.conftest import bearer, replica_caught_up
from tools.pgstack import Stack

ROOT = Path(__file__).resolve().parents[3]
DB = "analytics_seeded"
END = datetime(2026, 1, 1, tzinfo=UTC)
SEED_ARGS = ["seed", "--preset", "small", "--seed", "7", "--end", "2026-01-01"]


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_DATABASE_URL": stack.url(stack.primary_port, db=DB),
        "APP_REPLICA_DATABASE_URL": stack.url(stack.replica_port, db=DB),
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def seeded(pg_stack: Stack) -> Iterator[Stack]:
    pg_stack.primary.psql(f"DROP DATABASE IF EXISTS {DB}")
    pg_stack.primary.psql(f"CREATE DATABASE {DB} OWNER app")
    command.upgrade(alembic_config(pg_stack.url(pg_stack.primary_port, db=DB)), "head")
    result = _cli(pg_stack, *SEED_ARGS)
    assert result.returncode == 0, result.stderr
    # The seed prints its rates; the progress bar goes to stderr.
    assert "analytics_event" in result.stdout
    assert "rows/s" in result.stdout
    assert "rows/s" in result.stderr
    yield pg_stack
    pg_stack.primary.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def _scalar(stack: Stack, sql: str) -> str:
    return stack.primary.psql(sql, db=DB)


def test_seed_writes_the_preset_with_realistic_funnels(seeded: Stack) -> None:
    assert int(_scalar(seeded, "SELECT count(*) FROM analytics_event")) == 200_000
    assert int(_scalar(seeded, "SELECT count(*) FROM analytics_signup")) == 5_000
    assert int(_scalar(seeded, "SELECT count(*) FROM analytics_checkout")) == 3_000
    first, last = _scalar(
        seeded,
        "SELECT min(occurred_at)::date || ' ' || max(occurred_at)::date FROM analytics_event",
    ).split()
    assert (first, last) == ("2025-12-02", "2025-12-31")

    verified = float(
        _scalar(seeded, "SELECT avg((verified_at IS NOT NULL)::int) FROM analytics_signup")
    )
    paid = float(_scalar(seeded, "SELECT avg((outcome = 'paid')::int) FROM analytics_checkout"))
    assert 0.65 < verified < 0.8
    assert 0.8 < paid < 0.92
    # Zipf-like popularity: the most clicked product gets many times the median product's clicks.
    top, median = _scalar(
        seeded,
        "SELECT max(n) || ' ' || percentile_cont(0.5) WITHIN GROUP (ORDER BY n) FROM "
        "(SELECT count(*) AS n FROM analytics_event WHERE type = 'search_click' "
        "GROUP BY product_id) AS c",
    ).split()
    assert float(top) > 10 * float(median)
    # Diurnal: the evening peak hour sees several times the night's trough.
    peak, trough = _scalar(
        seeded,
        "SELECT max(n) || ' ' || min(n) FROM (SELECT count(*) AS n FROM analytics_event "
        "GROUP BY extract(hour FROM occurred_at)) AS h",
    ).split()
    assert int(peak) > 3 * int(trough)


def test_seed_refuses_to_write_over_existing_rows(seeded: Stack) -> None:
    again = _cli(seeded, *SEED_ARGS)
    assert again.returncode == 1
    assert "--reset" in again.stderr
    assert int(_scalar(seeded, "SELECT count(*) FROM analytics_event")) == 200_000


def test_seed_is_deterministic_from_its_seed() -> None:
    preset = PRESETS["small"]
    one, two, other = (build_world(preset, s, END) for s in (3, 3, 4))
    assert one.users == two.users
    assert one.orders == two.orders
    assert one.users != other.users
    first_day = event_day(event_pools(one), 0)
    assert first_day == event_day(event_pools(two), 0)
    assert first_day != event_day(event_pools(other), 0)
    assert first_day.count(b"\n") == event_pools(one).quotas[0]


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("days", [7, 30])
@pytest.mark.parametrize("name", sorted(repository.REPORT_STATEMENTS))
async def test_report_queries_use_indexes_not_seq_scans(
    seeded: Stack, name: str, days: int
) -> None:
    await replica_caught_up(seeded, db=DB)
    statement = repository.REPORT_STATEMENTS[name]
    values = {"unit": "day", "start": END - timedelta(days=days), "end": END, "limit": 20}
    params = {k: v for k, v in values.items() if f":{k}" in statement.text}
    # On the replica, where the reports run (the seed's ANALYZE reached it with the WAL).
    engine = create_async_engine(seeded.url(seeded.replica_port, db=DB))
    try:
        async with engine.connect() as conn:
            explain = text("EXPLAIN (FORMAT JSON) " + statement.text)
            plan = (await conn.execute(explain, params)).scalar_one()[0]["Plan"]
    finally:
        await engine.dispose()
    scans = [n for n in _plan_nodes(plan) if n.get("Relation Name") == "analytics_event"]
    seq = [n for n in scans if n["Node Type"] == "Seq Scan"]
    assert not seq, f"{name} scans analytics_event sequentially: {plan}"
    if "analytics_event" in statement.text:
        assert scans, plan
        assert all("Index Name" in n or n["Node Type"] == "Bitmap Heap Scan" for n in scans), plan


@pytest.fixture
async def seeded_client(seeded: Stack) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        seeded,
        database_url=seeded.url(seeded.primary_port, db=DB),
        replica_database_url=seeded.url(seeded.replica_port, db=DB),
        analytics_report_statement_timeout_ms=1,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.headers.update(bearer(settings, "admin"))
            yield c


async def test_a_report_over_its_statement_timeout_is_a_504_and_stops_on_the_replica(
    seeded: Stack, seeded_client: httpx.AsyncClient
) -> None:
    await replica_caught_up(seeded, db=DB)
    response = await seeded_client.get(
        "/v1/analytics/reports/funnel",
        params={"from": "2025-12-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "interval": "hour"},
    )
    assert response.status_code == 504, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/timeout"
    running = seeded.replica.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state <> 'idle' AND query LIKE '%analytics_%' AND pid <> pg_backend_pid()",
        db=DB,
    )
    assert running == "0"
