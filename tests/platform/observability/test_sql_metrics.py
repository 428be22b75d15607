"""SQL metrics: statement timing per module, operation and engine; queries per request; pools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.main import create_app
from app.platform.db import Database
from app.platform.observability.context import observe
from app.platform.observability.sql import normalize
from app.platform.web.sessions import ReadSession
from tests.helpers import make_settings, started
from tests.platform.observability.samples import Key, changes, key, snapshot, value
from tools.pgstack import Stack

QUERIES = ("db_query_duration_seconds_count",)


def _count(operation: str, target: str, module: str = "payments") -> Key:
    return key("db_query_duration_seconds_count", module=module, operation=operation, target=target)


async def _warm(db: Database) -> None:
    # A fresh engine's first connection runs the dialect's own setup queries; keep them out.
    for engine in (db.primary, db.replica):
        assert engine is not None
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))


async def test_statements_are_timed_per_module_operation_and_target(app: FastAPI) -> None:
    db: Database = app.state.db
    assert db.replica is not None
    await _warm(db)
    before = snapshot(("db_query_duration_seconds",))
    with observe("payments", "test:sql"):
        async with db.primary.connect() as conn:
            await conn.execute(text("CREATE TEMP TABLE obs_tmp (id int)"))
            await conn.execute(text("INSERT INTO obs_tmp VALUES (1), (2)"))
            await conn.execute(text("UPDATE obs_tmp SET id = id + 10"))
            await conn.execute(text("DELETE FROM obs_tmp WHERE id > 11"))
            await conn.execute(text("SELECT pg_sleep(0.3)"))
            await conn.execute(text("SELECT count(*) FROM obs_tmp"))
            with pytest.raises(DBAPIError):
                await conn.execute(text("SELECT 1 / 0"))  # failed statements are timed too
            await conn.rollback()
        async with db.replica.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await conn.execute(text("WITH x AS (SELECT 2 AS n) SELECT n FROM x"))
    after = snapshot(("db_query_duration_seconds",))

    moved = changes(before, after)
    assert {k: v for k, v in moved.items() if k[0].endswith("_count")} == {
        _count("other", "primary"): 1,
        _count("insert", "primary"): 1,
        _count("update", "primary"): 1,
        _count("delete", "primary"): 1,
        _count("select", "primary"): 3,
        _count("select", "replica"): 2,
    }
    select = {"module": "payments", "operation": "select", "target": "primary"}
    bucket = "db_query_duration_seconds_bucket"
    assert moved[key(bucket, **select, le="+Inf")] == 3
    assert moved[key(bucket, **select, le="0.25")] == 2  # all but the pg_sleep(0.3)
    assert 0.3 <= moved[key("db_query_duration_seconds_sum", **select)] < 2.5


async def test_statements_outside_any_request_belong_to_the_platform(app: FastAPI) -> None:
    db: Database = app.state.db
    await _warm(db)
    before = snapshot(QUERIES)
    async with db.primary.connect() as conn:
        await conn.execute(text("SELECT 42"))
    assert changes(before, snapshot(QUERIES)) == {_count("select", "primary", "platform"): 1}


async def test_queries_per_request_histogram(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def three_reads(session: ReadSession) -> dict[str, int]:
        total = 0
        for n in (1, 2, 3):
            total += (await session.execute(text(f"SELECT {n} + 0 AS n_{n}"))).scalar_one()
        return {"total": total}

    three_reads.__module__ = "app.modules.analytics.router"
    app.add_api_route("/v1/three", three_reads, methods=["GET"])
    labels = {"module": "analytics", "route": "/v1/three"}
    before = snapshot(("http_request_db_queries", "db_query_duration_seconds_count"))
    assert (await client.get("/v1/three")).json() == {"total": 6}
    moved = changes(
        before, snapshot(("http_request_db_queries", "db_query_duration_seconds_count"))
    )
    assert moved[key("http_request_db_queries_count", **labels)] == 1
    assert moved[key("http_request_db_queries_sum", **labels)] == 3
    assert moved[key("http_request_db_queries_bucket", **labels, le="3.0")] == 1
    assert key("http_request_db_queries_bucket", **labels, le="2.0") not in moved
    assert moved[_count("select", "replica", "analytics")] == 3


@pytest.fixture
async def small_pool_app(migrated: Stack) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(migrated, db_pool_size=1, db_max_overflow=0))
    async with started(application):
        yield application


async def test_pool_gauges_and_wait_time(small_pool_app: FastAPI) -> None:
    db: Database = small_pool_app.state.db
    primary = {"target": "primary"}
    assert value("db_pool_size", **primary) == 1
    assert value("db_pool_checked_out", **primary) == 0
    before = snapshot(("db_pool_wait_seconds",))

    second_in = asyncio.Event()

    async def second() -> None:
        async with db.primary.connect() as conn:
            second_in.set()
            await conn.execute(text("SELECT 1"))

    async with db.primary.connect() as conn:
        await conn.execute(text("SELECT 1"))
        assert value("db_pool_checked_out", **primary) == 1
        waiting = asyncio.ensure_future(second())
        await asyncio.sleep(0.3)
        assert not second_in.is_set()  # the only connection is ours: it waits
    await waiting
    assert value("db_pool_checked_out", **primary) == 0
    assert value("db_pool_overflow", **primary) == 0

    moved = changes(before, snapshot(("db_pool_wait_seconds",)))
    assert moved[key("db_pool_wait_seconds_count", **primary)] == 2
    assert moved[key("db_pool_wait_seconds_sum", **primary)] >= 0.25
    assert moved[key("db_pool_wait_seconds_bucket", **primary, le="0.25")] == 1


@pytest.mark.parametrize(
    ("statement", "shape"),
    [
        (
            "SELECT a.id FROM t AS a WHERE a.id = $1::INTEGER AND a.name = 'x''y' LIMIT 10",
            "SELECT a.id FROM t AS a WHERE a.id = ? AND a.name = ? LIMIT ?",
        ),
        (
            "SELECT * FROM t WHERE id IN ($1::UUID, $2::UUID, $3::UUID)",
            "SELECT * FROM t WHERE id IN (?)",
        ),
        ("select 1 -- note\n  from   t where x = :x", "select ? from t where x = ?"),
        ("UPDATE t SET n = n + 1.5e3 WHERE id = %(id_1)s", "UPDATE t SET n = n + ? WHERE id = ?"),
    ],
)
def test_normalize_strips_literals_and_parameters(statement: str, shape: str) -> None:
    assert normalize(statement) == shape


async def test_requests_without_statements_fill_the_zero_bucket(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # A request that runs no SQL writes nothing to this family: its bucket is derived at scrape
    # time from the requests finished. The derivation must give what observing 0 would.
    async def maybe_reads(n: int, session: ReadSession) -> dict[str, int]:
        for _ in range(n):
            await session.execute(text("SELECT 1"))
        return {"ran": n}

    maybe_reads.__module__ = "app.modules.analytics.router"
    app.add_api_route("/v1/maybe/{n}", maybe_reads, methods=["GET"])
    labels = {"module": "analytics", "route": "/v1/maybe/{n}"}
    before = snapshot(("http_request_db_queries", "http_requests_in_progress"))
    for n in (0, 2, 0, 0):
        assert (await client.get(f"/v1/maybe/{n}")).status_code == 200
    moved = changes(before, snapshot(("http_request_db_queries", "http_requests_in_progress")))
    bucket = "http_request_db_queries_bucket"
    assert moved == {
        key("http_request_db_queries_count", **labels): 4,
        key("http_request_db_queries_sum", **labels): 2,
        **{key(bucket, **labels, le=le): 3 for le in ("0.0", "1.0")},
        **{
            key(bucket, **labels, le=le): 4
            for le in ("2.0", "3.0", "5.0", "8.0", "13.0", "21.0", "34.0", "55.0", "100.0", "+Inf")
        },
    }
