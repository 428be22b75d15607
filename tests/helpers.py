"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from app.platform.config import Settings
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


def make_settings(stack: Stack, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": stack.primary_url,
        "replica_database_url": stack.replica_url,
        "db_pool_timeout_seconds": 2.0,
        "readiness_timeout_seconds": 2.0,
        # An N+1 in any test fails it, instead of only counting and warning.
        "db_n_plus_one_strict": True,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def wait_for(
    predicate: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Poll an async predicate until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


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
