"""The correctness canary against the real app: clean without a bug, and a keyed stale cache found
on the product page alone, counted by route and reader; a refused login is an error."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.modules.payments.service.cache import CACHE, FRESHNESS_SKIPPED
from app.platform import faults
from app.platform.canary import metrics
from app.platform.canary.probe import Canary, CanaryConfig, CanaryError
from app.platform.config import Settings
from app.seed.tables import DEMO_PASSWORD, DEMO_PASSWORD_HASH
from tests.helpers import make_settings, wait_for
from tools.pgstack import Stack


def _accounts(stack: Stack, roles: list[str]) -> list[str]:
    """Verified accounts whose password is the seed's demo password."""
    emails = [f"canary-{uuid.uuid4().hex[:10]}@example.com" for _ in roles]
    values = ", ".join(
        f"(gen_random_uuid(), '{email}', '{DEMO_PASSWORD_HASH}', '{role}', now())"
        for email, role in zip(emails, roles, strict=True)
    )
    stack.primary.psql(
        "INSERT INTO auth_user (id, email, password_hash, role, email_verified_at) "  # noqa: S608 - ours
        f"VALUES {values}",
        db="app",
    )
    return emails


def _canary(app: FastAPI, admin: str, users: list[str], password: str = DEMO_PASSWORD) -> Canary:
    config = CanaryConfig(
        base_url="http://testserver",
        admin_email=admin,
        user_emails=tuple(users),
        password=password,
        product_name=f"Canary probe {uuid.uuid4().hex[:8]}",
        settle_seconds=0.2,
    )
    return Canary(config, transport=httpx.ASGITransport(app=app, raise_app_exceptions=False))


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def cached_app(migrated: Stack) -> AsyncIterator[FastAPI]:
    """The app with its product-page cache on (the suite's settings switch it off)."""
    application = create_app(make_settings(migrated, payments_catalog_cache=True))
    async with application.router.lifespan_context(application):
        await wait_for(_cache_live, timeout=60)  # entries are kept once invalidations can arrive
        yield application


async def _cache_live() -> bool:
    return CACHE.live()


async def _ratio_is(ratio: float) -> bool:
    return FRESHNESS_SKIPPED.ratio() == ratio


@asynccontextmanager
async def freshness_fault(settings: Settings) -> AsyncIterator[None]:
    """The cache's fault switched on for every reader, through the table every process reads."""
    engine = create_async_engine(str(settings.database_url))
    try:
        async with engine.begin() as conn:
            await faults.switch_on(conn, FRESHNESS_SKIPPED.name, 1.0)
        await wait_for(lambda: _ratio_is(1.0), timeout=60)
        yield
    finally:
        async with engine.begin() as conn:
            await faults.switch_off(conn, FRESHNESS_SKIPPED.name)
        await wait_for(lambda: _ratio_is(0.0), timeout=60)
        await engine.dispose()


async def test_without_a_bug_every_read_matches(cached_app: FastAPI, migrated: Stack) -> None:
    admin, *users = _accounts(migrated, ["admin", "member", "member"])
    canary = _canary(cached_app, admin, users)
    for _ in range(2):  # the second check reads through entries the first one cached
        result = await canary.check()
        assert result.consistent, result
    assert result.routes[metrics.PRODUCT_ROUTE].readers == 2
    assert _value("canary_stale_readers", route=metrics.PRODUCT_ROUTE) == 0


async def test_a_stale_cache_is_found_on_the_product_page_and_counted_per_reader(
    cached_app: FastAPI, migrated: Stack, settings: Settings
) -> None:
    admin, *users = _accounts(migrated, ["admin", "member", "member", "member"])
    canary = _canary(cached_app, admin, users)
    assert (await canary.check()).consistent  # every reader's page cached, current
    mismatches = _value("canary_mismatches_total", route=metrics.PRODUCT_ROUTE)
    checks = _value("canary_checks_total", outcome="mismatch")
    async with freshness_fault(settings):
        result = await canary.check()
    assert sorted(result.routes[metrics.PRODUCT_ROUTE].stale) == sorted(users)
    assert result.routes[metrics.SEARCH_ROUTE].stale == []  # uncached: the new price
    assert _value("canary_mismatches_total", route=metrics.PRODUCT_ROUTE) == mismatches + 3
    assert _value("canary_checks_total", outcome="mismatch") == checks + 1
    assert _value("canary_stale_readers", route=metrics.PRODUCT_ROUTE) == 3
    assert _value("canary_readers", route=metrics.PRODUCT_ROUTE) == 3


async def test_a_refused_login_is_an_error_not_a_mismatch(app: FastAPI, migrated: Stack) -> None:
    admin, user = _accounts(migrated, ["admin", "member"])
    errors = _value("canary_checks_total", outcome="error")
    with pytest.raises(CanaryError, match="refused: 401"):
        await _canary(app, admin, [user], password="not-the-password").check()
    assert _value("canary_checks_total", outcome="error") == errors + 1
