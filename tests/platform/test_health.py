"""Liveness and readiness against the real primary and replica, including either one stopped."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app
from tests.helpers import make_settings, serving
from tools.pgstack import Stack

PROBLEM = "application/problem+json"


async def test_healthz(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


async def test_ready_with_primary_and_replica_up(client: httpx.AsyncClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok"
    primary, replicas = body["checks"]["primary"], body["checks"]["replicas"]
    assert primary["status"] == "up"
    assert primary["migrations"]["at_head"] is True
    assert primary["migrations"]["current"] == primary["migrations"]["head"] != []
    assert len(replicas) == 2
    for replica in replicas:
        assert replica["status"] == "up"
        assert replica["in_recovery"] is True
        assert isinstance(replica["lag_bytes"], int)
        assert replica["lag_bytes"] >= 0
    assert body["checks"]["replica"]["status"] == "up"


@pytest.fixture
def replica_stopped(migrated: Stack) -> Iterator[Stack]:
    migrated.replica.stop()
    try:
        yield migrated
    finally:
        migrated.replica.start()


@pytest.fixture
def primary_stopped(migrated: Stack) -> Iterator[Stack]:
    migrated.primary.stop()
    try:
        yield migrated
    finally:
        migrated.primary.start()


async def test_replica_down_is_degraded_but_ready(
    client: httpx.AsyncClient, replica_stopped: Stack
) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "degraded"
    assert body["checks"]["primary"]["status"] == "up"
    stopped, running = body["checks"]["replicas"]
    assert (stopped["status"], stopped["healthy"]) == ("down", False)
    assert stopped["error"]
    assert (running["status"], running["healthy"]) == ("up", True)
    # The other replica still serves reads.
    assert body["checks"]["replica"]["status"] == "partial"
    assert body["checks"]["replica"]["routing"] == "replica"
    assert stopped["name"] in body["checks"]["replica"]["error"]


async def test_primary_down_is_503_problem(
    client: httpx.AsyncClient, primary_stopped: Stack
) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 503
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["type"] == "/problems/not-ready"
    assert body["detail"] == "the primary database is unreachable"
    assert body["checks"]["primary"]["status"] == "down"
    # Liveness does not depend on the database.
    assert (await client.get("/healthz")).status_code == 200


async def test_recovers_after_primary_restart(client: httpx.AsyncClient, migrated: Stack) -> None:
    migrated.primary.stop()
    assert (await client.get("/readyz")).status_code == 503
    migrated.primary.start()
    resp = await client.get("/readyz")
    assert resp.status_code == 200, resp.text


async def test_migrations_behind_is_503(migrated: Stack) -> None:
    migrated.primary.psql("DROP DATABASE IF EXISTS unmigrated")
    migrated.primary.psql("CREATE DATABASE unmigrated OWNER app")
    settings = make_settings(
        migrated,
        database_url=migrated.url(migrated.primary_port, db="unmigrated"),
        replica_database_urls=[
            migrated.url(port, db="unmigrated") for port in migrated.replica_ports
        ],
    )
    app = create_app(settings)
    async with serving(app, raise_app_exceptions=True) as c:
        resp = await c.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["detail"] == "migrations are behind head"
    assert body["checks"]["primary"]["migrations"]["current"] == []
