"""On a database seeded by ``python -m app seed`` (200,000 events): the seed's output, the
consistency of every seeded table with the others, a login with the printed demo credentials,
the plans of every report query, and a real report that outruns its statement timeout."""

from __future__ import annotations

import os
import struct
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
from app.seed.events import event_day, event_pools
from app.seed.tables import DEMO_PASSWORD
from app.seed.world import ADMIN_EMAIL, PRESETS, build_world
from tests.helpers import make_settings, serving
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
    # The seed prints its rates and the demo logins; the progress bar goes to stderr.
    assert "analytics_event" in result.stdout
    assert "rows/s" in result.stdout
    assert "rows/s" in result.stderr
    assert f"{ADMIN_EMAIL} / {DEMO_PASSWORD}" in result.stdout
    yield pg_stack
    pg_stack.primary.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def _scalar(stack: Stack, sql: str) -> str:
    return stack.primary.psql(sql, db=DB)


def _count(stack: Stack, sql: str) -> int:
    return int(_scalar(stack, sql))


def test_seed_writes_the_preset_with_realistic_funnels(seeded: Stack) -> None:
    for table, rows in {
        "analytics_event": 200_000,
        "analytics_signup": 5_000,
        "analytics_checkout": 3_000,
        "auth_user": 5_000,
        "payments_product": 500,
        "payments_order": 3_000,
        "payments_payment": 3_000,
    }.items():
        assert _count(seeded, f"SELECT count(*) FROM {table}") == rows, table  # noqa: S608
    # Orders have one to three items; a few paid orders are refunded.
    assert 3_000 < _count(seeded, "SELECT count(*) FROM payments_order_item") < 6_000
    assert _count(seeded, "SELECT count(*) FROM payments_refund") > 0
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


# Each query counts rows that break one cross-table rule; every count must be 0.
CONSISTENCY = {
    "an order's user is not a user": "SELECT count(*) FROM payments_order o "
    "WHERE NOT EXISTS (SELECT FROM auth_user u WHERE u.id = o.user_id)",
    "an order's buyer had not verified their e-mail by then": "SELECT count(*) FROM "
    "payments_order o JOIN auth_user u ON u.id = o.user_id "
    "WHERE u.email_verified_at IS NULL OR u.email_verified_at > o.created_at",
    "a clicked product is not a product": "SELECT count(*) FROM analytics_event e "
    "WHERE e.type = 'search_click' "
    "AND NOT EXISTS (SELECT FROM payments_product p WHERE p.id = e.product_id)",
    "a viewed product page is not a product": "SELECT count(*) FROM analytics_event e "
    "WHERE e.path LIKE '/products/%' "
    "AND NOT EXISTS (SELECT FROM payments_product p WHERE '/products/' || p.id = e.path)",
    "a signed-in event's user is not a user, or not yet": "SELECT count(*) FROM "
    "analytics_event e LEFT JOIN auth_user u ON u.id = e.user_id "
    "WHERE e.user_id IS NOT NULL AND (u.id IS NULL OR e.occurred_at < u.created_at)",
    "a paid order without a succeeded payment": "SELECT count(*) FROM payments_order o "
    "WHERE o.status IN ('paid', 'partially_refunded', 'refunded') AND NOT EXISTS "
    "(SELECT FROM payments_payment p WHERE p.order_id = o.id AND p.status = 'succeeded' "
    "AND p.amount = o.total_amount AND p.provider_charge_id IS NOT NULL)",
    "a failed order without a failed payment": "SELECT count(*) FROM payments_order o "
    "WHERE o.status = 'failed' AND NOT EXISTS (SELECT FROM payments_payment p "
    "WHERE p.order_id = o.id AND p.status = 'failed' AND p.failure_code IS NOT NULL)",
    "an order's total is not the sum of its items": "SELECT count(*) FROM payments_order o "
    "WHERE o.total_amount <> (SELECT coalesce(sum(i.line_amount), -1) "
    "FROM payments_order_item i WHERE i.order_id = o.id)",
    "an item's line amount is not unit x quantity": "SELECT count(*) FROM payments_order_item "
    "WHERE line_amount <> unit_amount * quantity",
    "refunds do not add up to the order's refunded amount": "SELECT count(*) FROM "
    "payments_order o JOIN payments_payment p ON p.order_id = o.id "
    "WHERE o.refunded_amount <> p.refunded_amount OR o.refunded_amount <> (SELECT "
    "coalesce(sum(r.amount), 0) FROM payments_refund r WHERE r.order_id = o.id) "
    "OR (o.status = 'refunded') <> (o.refunded_amount = o.total_amount AND o.refunded_amount > 0)",
    "analytics' checkouts are not the orders": "SELECT count(*) FROM payments_order o "
    "FULL JOIN analytics_checkout c ON c.order_id = o.id WHERE o.id IS NULL OR c.order_id IS NULL "
    "OR c.user_id <> o.user_id OR c.amount <> o.total_amount "
    "OR c.outcome <> CASE o.status WHEN 'failed' THEN 'failed' ELSE 'paid' END",
    "analytics' signups are not the users": "SELECT count(*) FROM auth_user u "
    "FULL JOIN analytics_signup s ON s.user_id = u.id WHERE u.id IS NULL OR s.user_id IS NULL "
    "OR s.signed_up_at <> u.created_at "
    "OR s.verified_at IS DISTINCT FROM u.email_verified_at",
}


@pytest.mark.parametrize("rule", sorted(CONSISTENCY))
def test_seeded_tables_agree_with_each_other(seeded: Stack, rule: str) -> None:
    assert _count(seeded, CONSISTENCY[rule]) == 0, rule


def test_seed_leaves_the_tables_ready_for_the_app(seeded: Stack) -> None:
    # The generated search vector was computed by the server; the next event id follows the seed's.
    assert _count(seeded, "SELECT count(*) FROM payments_product WHERE search_vector = ''") == 0
    assert _count(seeded, "SELECT count(*) FROM payments_product WHERE search_vector @@ "
                  "websearch_to_tsquery('english', 'lamp')") > 0  # fmt: skip
    assert _count(seeded, "SELECT count(*) FROM auth_user WHERE role = 'admin'") == 1
    with_default_id = (
        "INSERT INTO analytics_event (type, occurred_at, anonymous_id) "
        "VALUES ('page_view', now(), 'after-seed') RETURNING id"
    )
    assert _count(seeded, with_default_id) == 200_001
    seeded.primary.psql("DELETE FROM analytics_event WHERE anonymous_id = 'after-seed'", db=DB)


async def test_the_printed_demo_admin_can_log_in(seeded: Stack) -> None:
    settings = make_settings(
        seeded,
        database_url=seeded.url(seeded.primary_port, db=DB),
        replica_database_url=seeded.url(seeded.replica_port, db=DB),
    )
    application = create_app(settings)
    async with serving(application, raise_app_exceptions=True) as c:
        login = await c.post(
            "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": DEMO_PASSWORD}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        report = await c.get(
            "/v1/analytics/reports/search-terms",
            params={"from": "2025-12-25T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert report.status_code == 200, report.text


def test_seed_refuses_to_write_over_existing_rows(seeded: Stack) -> None:
    again = _cli(seeded, *SEED_ARGS)
    assert again.returncode == 1
    assert "--reset" in again.stderr
    assert _count(seeded, "SELECT count(*) FROM analytics_event") == 200_000


def test_seed_if_empty_leaves_existing_data_alone(seeded: Stack) -> None:
    again = _cli(seeded, *SEED_ARGS, "--if-empty")
    assert again.returncode == 0, again.stderr
    assert "not seeding" in again.stdout
    assert _count(seeded, "SELECT count(*) FROM analytics_event") == 200_000
    assert _count(seeded, "SELECT count(*) FROM auth_user") == 5_000


def _binary_copy_rows(chunk: bytes) -> int:
    """Rows in a run of binary COPY tuples (field count, then length-prefixed fields)."""
    rows, at = 0, 0
    while at < len(chunk):
        (fields,) = struct.unpack_from("!h", chunk, at)
        at += 2
        for _ in range(fields):
            (length,) = struct.unpack_from("!i", chunk, at)
            at += 4 + max(length, 0)
        rows += 1
    assert at == len(chunk)
    return rows


def test_seed_is_deterministic_from_its_seed() -> None:
    preset = PRESETS["small"]
    one, two, other = (build_world(preset, s, END) for s in (3, 3, 4))
    assert one.users == two.users
    assert one.products == two.products
    assert one.orders == two.orders
    assert one.users != other.users
    assert one.users[0].email == ADMIN_EMAIL
    day = 5  # users exist by then, so some sessions are signed in
    first = event_day(event_pools(one), day)
    assert first == event_day(event_pools(two), day)
    assert first != event_day(event_pools(other), day)
    assert _binary_copy_rows(first) == event_pools(one).quotas[day]


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("days", [7, 30])
@pytest.mark.parametrize("name", sorted(repository.REPORT_STATEMENTS))
async def test_report_queries_use_indexes_not_seq_scans(
    seeded: Stack, name: str, days: int
) -> None:
    await replica_caught_up(seeded)
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
    async with serving(application, headers=bearer(settings, "admin")) as c:
        yield c


async def test_a_report_over_its_statement_timeout_is_a_504_and_stops_on_the_replica(
    seeded: Stack, seeded_client: httpx.AsyncClient
) -> None:
    await replica_caught_up(seeded)
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
