"""A database of its own for the audit tests, with planted problems and a workload on both nodes.

- ``probe_order`` (60,000 rows) lost its compound index ``(tenant_id, created_at)``; the statement
  that needs it runs 300 times through the app's SQL instrumentation (tagged with module/route).
- ``probe_flag``'s statistics were taken before every row got ``flag = 1`` (autovacuum off): an
  index on ``flag`` looks nearly free to the planner and HypoPG, and is slower for real.
- an unused index, a duplicate pair, an index scanned only on the replica, a foreign key without
  an index.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.platform.config import Settings
from app.platform.observability.context import observe
from app.platform.observability.sql import clear_samples, instrument_engine
from tests.helpers import make_settings, replica_catch_up
from tools.pgstack import AUDIT_PASSWORD, AUDIT_USER, Stack

DB = "audit_lab"
ORDERS = 60_000
FLAGS = 40_000
SINCE = datetime(2026, 1, 1, tzinfo=UTC)

ORDER_SQL = text(
    "SELECT id, amount FROM probe_order WHERE tenant_id = :tenant AND created_at >= :since "
    "ORDER BY created_at DESC LIMIT 20"
)
FLAG_SQL = text("SELECT max(amount) FROM probe_flag WHERE flag = :flag")
LOOKUP_SQL = text("SELECT payload FROM probe_lookup WHERE code = :code")

SCHEMA = """
CREATE TABLE probe_order (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id int NOT NULL,
    created_at timestamptz NOT NULL, amount int NOT NULL, note text NOT NULL);
CREATE INDEX ix_probe_order_note ON probe_order (note);
CREATE INDEX ix_probe_order_amount ON probe_order (amount);
CREATE INDEX ix_probe_order_amount_copy ON probe_order (amount);
CREATE TABLE probe_flag (id int PRIMARY KEY, flag int NOT NULL, amount int NOT NULL, pad text)
    WITH (autovacuum_enabled = false);
CREATE TABLE probe_lookup (id int PRIMARY KEY, code text NOT NULL, payload text NOT NULL);
CREATE INDEX ix_probe_lookup_code ON probe_lookup (code);
CREATE TABLE probe_customer (id int PRIMARY KEY);
CREATE TABLE probe_invoice (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES probe_customer);
"""


@dataclass
class Lab:
    stack: Stack
    settings: Settings

    def app_url(self, port: int) -> str:
        return self.stack.url(port, db=DB, driver="postgresql")

    def audit_url(self, port: int) -> str:
        return f"postgresql://{AUDIT_USER}:{AUDIT_PASSWORD}@127.0.0.1:{port}/{DB}"

    @property
    def primary(self) -> str:
        return self.audit_url(self.stack.primary_port)

    @property
    def replica(self) -> str:
        return self.audit_url(self.stack.replica_port)

    def psql(self, sql: str) -> str:
        return self.stack.primary.psql(sql, db=DB)


async def _load(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
        # Loaded with COPY, as the seed does: the audit must leave these statements out.
        await conn.copy_records_to_table(
            "probe_order",
            records=[
                (i % 300, SINCE + timedelta(minutes=i), i % 977, f"n{i % 50}")
                for i in range(ORDERS)
            ],
            columns=["tenant_id", "created_at", "amount", "note"],
        )
        await conn.copy_records_to_table(
            "probe_flag", records=[(i, 0, i % 1000, "x" * 40) for i in range(FLAGS)]
        )
        await conn.copy_records_to_table(
            "probe_lookup", records=[(i, f"c{i}", "p" * 30) for i in range(20_000)]
        )
        await conn.execute(
            "CREATE INDEX ix_probe_order_tenant_created ON probe_order (tenant_id, created_at)"
        )
        await conn.execute("ANALYZE")
        # The statistics now say flag = 0 everywhere; then every row becomes flag = 1, with no
        # ANALYZE after it (VACUUM updates the row count, not the column statistics).
        await conn.execute("TRUNCATE probe_flag")
        await conn.copy_records_to_table(
            "probe_flag", records=[(i, 1, i % 1000, "x" * 40) for i in range(FLAGS)]
        )
        await conn.execute("VACUUM probe_flag")
        # "A compound index dropped": the statement below needed it.
        await conn.execute("DROP INDEX ix_probe_order_tenant_created")
    finally:
        await conn.close()


async def _workload(settings: Settings) -> None:
    engines: list[AsyncEngine] = []
    for target, url in (
        ("primary", settings.database_url),
        ("replica", settings.replica_database_url),
    ):
        engine = create_async_engine(str(url), pool_size=1)
        instrument_engine(engine, target=target, settings=settings)
        engines.append(engine)
    primary, replica = engines
    try:
        # One observation scope a statement: each stands for one request of its route.
        async with primary.connect() as conn:
            for i in range(300):
                with observe("payments", "GET /v1/probe/orders"):
                    await conn.execute(ORDER_SQL, {"tenant": i % 300, "since": SINCE})
            for _ in range(40):
                with observe("analytics", "GET /v1/probe/flags"):
                    await conn.execute(FLAG_SQL, {"flag": 1})
        async with replica.connect() as conn:
            for i in range(20):
                with observe("analytics", "GET /v1/probe/lookup"):
                    await conn.execute(LOOKUP_SQL, {"code": f"c{i}"})
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.fixture(scope="package")
def lab(pg_stack: Stack) -> Iterator[Lab]:
    pg_stack.primary.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    pg_stack.primary.psql(f"CREATE DATABASE {DB} OWNER app")
    settings = make_settings(
        pg_stack,
        database_url=pg_stack.url(pg_stack.primary_port, db=DB),
        replica_database_url=pg_stack.url(pg_stack.replica_port, db=DB),
        # Every statement of the workload keeps its parameters: the audit explains with them.
        db_sample_slow_ms=0.5,
    )
    asyncio.run(_load(pg_stack.url(pg_stack.primary_port, db=DB, driver="postgresql")))
    replica_catch_up(pg_stack)
    clear_samples()
    asyncio.run(_workload(settings))
    yield Lab(pg_stack, settings)
    pg_stack.primary.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


@pytest.fixture
async def app_conn(lab: Lab) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(lab.app_url(lab.stack.primary_port))
    yield conn
    await conn.close()
