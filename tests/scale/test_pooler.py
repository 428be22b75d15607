"""The app through a real PgBouncer in transaction mode: the API, the outbox and its wake-up.

The pooler (tools/pooler.py, as `make run POOLER=1` starts it) lends three server connections
per server to every client, so consecutive statements of one client land on different server
connections and different clients' statements share one: prepared statements, caches and
session settings that outlive a transaction would collide or vanish here.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.main import create_app
from app.modules.notifications.senders import MEMORY_SENDER, Email
from app.platform.config import Settings
from app.platform.security import create_access_token
from tests.helpers import make_settings, serving, wait_for
from tools.pgstack import Stack
from tools.pooler import Pooler

PASSWORD = "Pooled-Pass-2024"
STATEMENT_TIMEOUT_MS = 1500


def pooled_settings(stack: Stack, pooler: Pooler, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": pooler.primary_url,
        "replica_database_url": pooler.replica_urls[0],
        "database_direct_url": stack.primary_url,
        "db_transaction_pooler": True,
        "db_statement_timeout_ms": STATEMENT_TIMEOUT_MS,
        "email_backend": "memory",
        "payments_fake_provider_latency_ms": 0,
        # Deliveries only when the LISTEN connection hears the outbox's NOTIFY: a poll this rare
        # never comes within a test, so a wake-up lost to the pooler would deliver nothing.
        "events_poll_interval_seconds": 3600.0,
        "events_backoff_base_seconds": 0.05,
        **overrides,
    }
    return make_settings(stack, **values)


@pytest.fixture
async def pooled_app(migrated: Stack, bouncer: Pooler) -> AsyncIterator[FastAPI]:
    app = create_app(pooled_settings(migrated, bouncer))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(pooled_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=pooled_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _mail(address: str, subject: str) -> Email:
    async def arrived() -> Email | None:
        return next(
            (m for m in MEMORY_SENDER.sent if m.to == address and m.subject == subject), None
        )

    return await wait_for(arrived, timeout=60)


async def _deliveries_since(stack: Stack, since: datetime) -> list[tuple[str, str, int]]:
    conn = await asyncpg.connect(stack.url(stack.primary_port, driver="postgresql"))
    try:
        rows = await conn.fetch(
            "SELECT d.listener, d.status, d.attempts FROM platform_event_delivery d "
            "JOIN platform_outbox_event e ON e.id = d.event_id WHERE e.published_at >= $1",
            since,
        )
    finally:
        await conn.close()
    return [(r["listener"], r["status"], r["attempts"]) for r in rows]


async def _now(stack: Stack) -> datetime:
    conn = await asyncpg.connect(stack.url(stack.primary_port, driver="postgresql"))
    try:
        value: datetime = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    return value


async def _signed_in(api: httpx.AsyncClient) -> dict[str, str]:
    email = f"pooled-{uuid.uuid4().hex[:10]}@example.com"
    signup = await api.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 202, signup.text
    mail = await _mail(email, "Confirm your email address")
    token = re.search(r"token=([A-Za-z0-9_\-]+)", mail.text)
    assert token, mail.text
    verified = await api.post("/v1/auth/verify-email", json={"token": token.group(1)})
    assert verified.status_code == 200, verified.text
    login = await api.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_signup_login_checkout_and_the_order_read_back_through_pgbouncer(
    api: httpx.AsyncClient, pooled_app: FastAPI, migrated: Stack
) -> None:
    since = await _now(migrated)
    # The verification mail is an outbox delivery, woken by NOTIFY on the direct connection.
    buyer = await _signed_in(api)
    me = await api.get("/v1/auth/me", headers=buyer)
    assert me.status_code == 200
    assert me.json()["email_verified"] is True

    settings: Settings = pooled_app.state.settings
    admin = {"Authorization": f"Bearer {create_access_token(settings, uuid.uuid4(), ['admin'])}"}
    product = await api.post(
        "/v1/products",
        json={"name": "Pooled lamp", "description": "", "price_amount": 1500, "currency": "EUR"},
        headers=admin,
    )
    assert product.status_code == 201, product.text
    body = {"items": [{"product_id": product.json()["id"], "quantity": 2}],
            "payment_token": "tok_success"}  # fmt: skip
    checkout = await api.post(
        "/v1/checkout", json=body, headers={**buyer, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert checkout.status_code == 201, checkout.text
    order_id = checkout.json()["id"]

    # Read-your-writes: the order is read at once, through the pooler (the replica's pool).
    order = await api.get(f"/v1/orders/{order_id}", headers=buyer)
    assert order.status_code == 200, order.text
    assert order.json()["status"] == "paid"
    assert order.json()["total_amount"] == 3000
    history = await api.get("/v1/orders", headers=buyer)
    assert [o["id"] for o in history.json()["items"]] == [order_id]

    # Every event of the journey (signup, verification, login, payment) delivered once.
    async def delivered() -> list[tuple[str, str, int]] | None:
        rows = await _deliveries_since(migrated, since)
        listeners = {listener for listener, _, _ in rows}
        complete = "notifications.send_receipt" in listeners and all(
            status == "done" for _, status, _ in rows
        )
        return rows if complete else None

    rows = await wait_for(delivered, timeout=60)
    assert {"analytics.record_signup", "analytics.record_paid_checkout"} <= {r[0] for r in rows}
    assert [r for r in rows if r[2] != 1] == [], "a delivery took more than one attempt"


async def _concurrent_reads(api: httpx.AsyncClient, settings: Settings) -> None:
    admin = {"Authorization": f"Bearer {create_access_token(settings, uuid.uuid4(), ['admin'])}"}
    created = await api.post(
        "/v1/products",
        json={"name": "Shared lamp", "description": "", "price_amount": 900, "currency": "EUR"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    path = f"/v1/products/{created.json()['id']}"
    token = created.headers["x-consistency-token"]

    async def read(i: int) -> int:
        target = path if i % 2 else "/v1/products"
        response = await api.get(target, headers={"x-consistency-token": token})
        return response.status_code

    # Forty requests at once through 20 pooled app connections and 3 server connections, twice
    # over so that every server connection serves statements prepared by many clients.
    for _ in range(2):
        assert await asyncio.gather(*(read(i) for i in range(40))) == [200] * 40


async def test_concurrent_requests_share_three_server_connections(
    api: httpx.AsyncClient, pooled_app: FastAPI
) -> None:
    await _concurrent_reads(api, pooled_app.state.settings)


async def test_statement_names_never_collide_between_processes_sharing_the_pooler(
    api: httpx.AsyncClient, pooled_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PgBouncer keeps whatever a transaction prepared on its server connection (no reset query,
    # as in CloudNativePG's Pooler), and asyncpg numbers named statements per process from 1:
    # a second app process sharing the pooler would pick names the first one left there.
    # Rewinding the counter stands for that process.
    start = asyncpg.connection._uid
    for _ in range(3):
        monkeypatch.setattr(asyncpg.connection, "_uid", start)
        await _concurrent_reads(api, pooled_app.state.settings)


async def test_the_statement_timeout_holds_in_every_transaction_through_pgbouncer(
    pooled_app: FastAPI,
) -> None:
    db = pooled_app.state.db
    expected = f"{STATEMENT_TIMEOUT_MS}ms"

    async def show() -> str:
        async with db.session() as session:
            return str(await session.scalar(text("SHOW statement_timeout")))

    assert set(await asyncio.gather(*(show() for _ in range(12)))) == {expected}
    async with db.read_session() as session:
        assert await session.scalar(text("SHOW statement_timeout")) == expected
    with pytest.raises(DBAPIError, match="statement timeout"):
        async with db.session() as session:
            await session.execute(text("SELECT pg_sleep(10)"))
    # SET LOCAL ended with its transaction: the server connection went back as it came.
    async with db.session() as session:
        assert await session.scalar(text("SELECT 1")) == 1


async def test_without_pooling_support_the_app_cannot_use_pgbouncer(
    migrated: Stack, bouncer: Pooler
) -> None:
    # The same app, not told it is pooled: PgBouncer refuses its session parameters.
    app = create_app(pooled_settings(migrated, bouncer, db_transaction_pooler=False))
    async with serving(app):
        with pytest.raises(DBAPIError, match="statement_timeout"):
            async with app.state.db.session() as session:
                await session.execute(text("SELECT 1"))
