"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

import httpx
import pytest
from fastapi import FastAPI

from app.platform.config import Settings
from app.platform.db import Database
from app.platform.observability.sql import QueryLog, count_queries
from tools.pgstack import Stack

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(name: str, install_hint: str) -> str:
    """The path of a system tool; skip without it, except in CI where a skip would hide a gap."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({install_hint})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


# httpx's own default client address.
DEFAULT_PEER = ("127.0.0.1", 123)


@asynccontextmanager
async def started(app: FastAPI) -> AsyncIterator[FastAPI]:
    """``app`` with its lifespan run (database, dispatcher, jobs), until the block ends."""
    async with app.router.lifespan_context(app):
        yield app


def asgi_client(
    app: FastAPI,
    *,
    headers: Mapping[str, str] | None = None,
    peer: tuple[str, int] = DEFAULT_PEER,
    raise_app_exceptions: bool = False,
) -> httpx.AsyncClient:
    """An in-process client on ``app`` with a cookie jar of its own (open it with ``async with``).

    By default the app's own 500 answers come back as responses (as a server would send them),
    not raised; ``peer`` is the client address the app sees.
    """
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions, client=peer)
    return httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=dict(headers or {})
    )


@asynccontextmanager
async def serving(
    app: FastAPI,
    *,
    headers: Mapping[str, str] | None = None,
    peer: tuple[str, int] = DEFAULT_PEER,
    raise_app_exceptions: bool = False,
) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` started (its lifespan run) and an in-process client on it, until the block ends:
    ``started`` and ``asgi_client`` together, the way every test that serves an app does."""
    client = asgi_client(app, headers=headers, peer=peer, raise_app_exceptions=raise_app_exceptions)
    async with started(app), client:
        yield client


def make_settings(stack: Stack, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": stack.primary_url,
        "replica_database_urls": tuple(stack.replica_urls),
        # Ceilings, not expectations: a loaded machine may need them (50 concurrent checkouts
        # queue for the pool's 20 connections; a readiness check waits for a busy server).
        "db_pool_timeout_seconds": 30.0,
        "readiness_timeout_seconds": 10.0,
        # Cheap hashing keeps the suite fast; production parameters are the defaults.
        "auth_argon2_time_cost": 1,
        "auth_argon2_memory_kib": 1024,
        "auth_argon2_parallelism": 1,
        # Every test client shares one address; tests of the per-address limit lower it.
        "auth_login_failures_per_ip": 10_000,
        "auth_reset_requests_per_ip": 10_000,
        # Reads go to the database, as the tests of routing and query budgets expect; the
        # product cache's own tests turn it on.
        "payments_catalog_cache": False,
        # An N+1 in any test fails it, instead of only counting and warning.
        "db_n_plus_one_strict": True,
        # One process builds hundreds of apps: frozen objects would never be collected.
        "gc_freeze": False,
        "gc_gen0_threshold": 0,
    }
    if "replica_database_url" in overrides:  # one replica, or none, asked for
        del values["replica_database_urls"]
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def deployed_settings(stack: Stack, env: str = "staging", **overrides: object) -> Settings:
    """Settings as a deployment has them: real secrets, SMTP, a public https URL, and the fake
    provider allowed as a staging demo. Production gets the same settings relabelled (no real
    payment adapter ships, and production refuses the fake)."""
    staging = make_settings(
        stack,
        env="staging",
        secret_key="deployed-secret-key-0123456789abcdef-0123456789",
        metrics_token="deployed-metrics-token-0123456789abcdef",
        payments_webhook_secret="deployed-webhook-secret-0123456789abcdef",
        email_backend="smtp",
        public_base_url="https://shop.example.com",
        payments_allow_fake_provider=True,
        **overrides,
    )
    return staging if env == "staging" else staging.model_copy(update={"env": env})


# The least time any wait gets. A condition met quickly costs no more for it; one that a busy
# machine delays (other suites, CPU hogs) gets time instead of failing the test. A wait exists
# to catch "never", not "slower than on a quiet machine".
MIN_WAIT_CEILING = 60.0


async def wait_for(
    predicate: Callable[[], Awaitable[T | None]], timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Poll an async predicate until it returns something truthy, for up to ``timeout`` seconds
    but never less than ``MIN_WAIT_CEILING``."""
    loop = asyncio.get_running_loop()
    timeout = max(timeout, MIN_WAIT_CEILING)
    deadline = loop.time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def replica_catch_up(stack: Stack, timeout: float = 10.0) -> None:
    """Block until every replica has replayed everything the primary has written so far."""
    import time

    timeout = max(timeout, MIN_WAIT_CEILING)
    target = stack.primary.psql("SELECT pg_current_wal_insert_lsn()")
    deadline = time.monotonic() + timeout
    for node in stack.replicas:
        while node.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") != "t":
            if time.monotonic() > deadline:
                raise AssertionError(f"{node.name} did not replay up to {target} within {timeout}s")
            time.sleep(0.02)


async def replica_caught_up(db: Database, timeout: float = 10.0) -> None:
    """Async form of ``replica_catch_up`` for tests holding the app's ``Database``."""
    from sqlalchemy import text

    from app.platform.db.lsn import lsn_to_int

    if not db.replicas:
        return
    async with db.primary.connect() as conn:
        target = lsn_to_int(await conn.scalar(text("SELECT pg_current_wal_insert_lsn()::text")))

    async def replayed() -> bool:
        for replica in db.replicas:
            async with replica.connect() as conn:
                position = await conn.scalar(text("SELECT pg_last_wal_replay_lsn()::text"))
            if lsn_to_int(position) < target:
                return False
        return True

    await wait_for(replayed, timeout=timeout, interval=0.02)


@contextmanager
def max_queries(limit: int) -> Iterator[QueryLog]:
    """Assert the block runs at most ``limit`` SQL statements (in-process requests included).

    Every list endpoint's tests state its query budget with this::

        with max_queries(3):
            resp = await client.get("/v1/orders")
    """
    with count_queries() as ran:
        yield ran
    if ran.count > limit:
        listing = "\n".join(f"  {i}. {sql}" for i, sql in enumerate(ran.statements, 1))
        raise AssertionError(f"expected at most {limit} queries, {ran.count} ran:\n{listing}")
