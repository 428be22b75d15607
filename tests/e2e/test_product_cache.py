"""The product cache across processes: a change made elsewhere reaches a server's cache."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.modules.payments.service.cache import FRESHNESS_SKIPPED
from app.platform import faults
from app.platform.config import Settings
from app.platform.security import create_access_token
from tests.e2e.conftest import Server, start_server, stop_server
from tests.helpers import wait_for
from tools.pgstack import Stack


@pytest.fixture
def cached_server(migrated: Stack, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(
        migrated,
        tmp_path / "server.log",
        extra_env={"APP_PAYMENTS_CATALOG_CACHE": "true", "APP_FAULTS_REFRESH_SECONDS": "0.2"},
    )
    yield srv
    stop_server(srv)


async def _metric(server: Server, pattern: str) -> float | None:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(server.base_url + "/metrics")).text
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else None


async def _price(server: Server, product_id: str, reader: str | None = None) -> int | None:
    headers = {"Authorization": f"Bearer {reader}"} if reader else {}
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(f"{server.base_url}/v1/products/{product_id}", headers=headers)
    return int(resp.json()["price_amount"]) if resp.status_code == 200 else None


def _shows(
    server: Server, product_id: str, price: int, reader: str | None = None
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await _price(server, product_id, reader) == price

    return check


def _readers(settings: Settings, ratio: float) -> tuple[str, str]:
    """Tokens of a reader the fault hits at ``ratio`` and of one it spares."""
    faults.apply({FRESHNESS_SKIPPED.name: ratio})
    try:
        ids = [uuid.uuid4() for _ in range(200)]
        hit = next(i for i in ids if FRESHNESS_SKIPPED.hits(i))
        spared = next(i for i in ids if not FRESHNESS_SKIPPED.hits(i))
    finally:
        faults.apply({})
    return (
        create_access_token(settings, hit, ["member"]),
        create_access_token(settings, spared, ["member"]),
    )


async def _switch(settings: Settings, ratio: float | None) -> None:
    engine = create_async_engine(str(settings.database_url))
    async with engine.begin() as conn:
        if ratio is None:
            await faults.switch_off(conn, FRESHNESS_SKIPPED.name)
        else:
            await faults.switch_on(conn, FRESHNESS_SKIPPED.name, ratio)
    await engine.dispose()


HITS = r'^payments_catalog_cache_total\{outcome="hit"\} (\S+)$'


async def test_a_change_elsewhere_reaches_the_servers_cache_and_the_fault_keeps_it_stale(
    cached_server: Server, client: httpx.AsyncClient, settings: Settings
) -> None:
    # The test process makes every change; the server process only reads.
    admin = {"Authorization": f"Bearer {create_access_token(settings, uuid.uuid4(), ['admin'])}"}
    created = await client.post(
        "/v1/products",
        json={"name": "Cached lamp", "description": "", "price_amount": 1000, "currency": "EUR"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    await wait_for(_shows(cached_server, product_id, 1000), timeout=60)

    hits = await _metric(cached_server, HITS) or 0.0
    assert await _price(cached_server, product_id) == 1000
    assert (await _metric(cached_server, HITS) or 0.0) > hits  # served from the cache

    changed = await client.patch(
        f"/v1/products/{product_id}", json={"price_amount": 1200}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    await wait_for(_shows(cached_server, product_id, 1200), timeout=60)

    # The workshop's bug: the freshness check skipped for a slice of readers.
    in_slice, spared = _readers(settings, 0.5)
    await _switch(settings, 0.5)
    active = rf'^fault_active\{{name="{re.escape(FRESHNESS_SKIPPED.name)}"\}} (\S+)$'
    try:

        async def fault_on() -> bool:
            return await _metric(cached_server, active) == 0.5

        await wait_for(fault_on, timeout=60)
        for reader in (in_slice, spared):
            assert await _price(cached_server, product_id, reader) == 1200  # cached per reader
        resp = await client.patch(
            f"/v1/products/{product_id}", json={"price_amount": 1500}, headers=admin
        )
        assert resp.status_code == 200
        # The spared reader seeing the new price proves the server heard of the change ...
        await wait_for(_shows(cached_server, product_id, 1500, spared), timeout=60)
        # ... while the slice keeps the old one, with a 200.
        assert await _price(cached_server, product_id, in_slice) == 1200
    finally:
        await _switch(settings, None)
    await wait_for(_shows(cached_server, product_id, 1500, in_slice), timeout=60)
