"""Checkout's idempotency keys (Stripe's rules): replays, scopes, expiry, concurrency, timeouts."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.payments.interface import OrderPaid
from app.modules.payments.models import IdempotencyKey
from app.modules.payments.providers import FakePaymentProvider
from tests.modules.payments.conftest import (
    PROBLEM,
    Caller,
    CommittedEvents,
    ProductFactory,
    cart,
    metric,
    orders_of,
)


async def test_same_key_and_body_replays_the_stored_response_byte_for_byte(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    product = await make_product()
    headers = buyer.with_key()
    first = await client.post("/v1/checkout", json=cart(product), headers=headers)
    before = metric("payments_checkouts_total", outcome="succeeded")
    # The same request, spelled differently: other key order and spacing.
    again = await client.post(
        "/v1/checkout",
        content=json.dumps({"payment_token": "tok_success", **cart(product)}, indent=2),
        headers={**headers, "Content-Type": "application/json"},
    )

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(provider.charges) == 1
    assert len(await orders_of(app, buyer.user_id)) == 1
    assert len(await events.of(OrderPaid)) == 1
    assert metric("payments_checkouts_total", outcome="succeeded") == before


async def test_a_stored_failure_replays_too(
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
) -> None:
    product = await make_product()
    headers = buyer.with_key()
    first = await client.post(
        "/v1/checkout", json=cart(product, pay_with="tok_declined"), headers=headers
    )
    again = await client.post(
        "/v1/checkout", json=cart(product, pay_with="tok_declined"), headers=headers
    )
    assert first.status_code == again.status_code == 402
    assert again.content == first.content
    assert again.headers["content-type"] == PROBLEM


async def test_same_key_with_another_body_is_a_problem(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
) -> None:
    product = await make_product()
    headers = buyer.with_key()
    assert (
        await client.post("/v1/checkout", json=cart(product, 1), headers=headers)
    ).status_code == 201
    response = await client.post("/v1/checkout", json=cart(product, 3), headers=headers)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/idempotency-key-reused"
    assert len(provider.charges) == 1
    assert len(await orders_of(app, buyer.user_id)) == 1


async def test_keys_are_scoped_to_the_user(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    other_buyer: Caller,
) -> None:
    product = await make_product()
    key = str(uuid.uuid4())
    mine = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key(key))
    theirs = await client.post(
        "/v1/checkout", json=cart(product), headers=other_buyer.with_key(key)
    )

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers
    assert len(provider.charges) == 2


async def test_keys_expire_after_the_ttl(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Any,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    db_session: AsyncSession,
) -> None:
    assert settings.payments_idempotency_ttl_seconds == 24 * 3600
    product = await make_product()
    key = str(uuid.uuid4())
    first = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key(key))
    row = await db_session.get(IdempotencyKey, (buyer.user_id, key))
    assert row is not None
    lifetime = row.expires_at - row.created_at
    assert lifetime.total_seconds() == pytest.approx(24 * 3600, abs=1)

    # A day later: the key is forgotten, the same request is a new checkout.
    await db_session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == buyer.user_id, IdempotencyKey.key == key)
        .values(expires_at=row.created_at)
    )
    await db_session.commit()
    later = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key(key))

    assert later.status_code == 201
    assert later.json()["id"] != first.json()["id"]
    assert len(provider.charges) == 2


@pytest.mark.slow
async def test_fifty_concurrent_requests_with_one_key_charge_exactly_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    provider.latency = 0.3  # the first request is still charging while the others arrive
    product = await make_product(price=4200)
    headers = buyer.with_key()
    body = cart(product)

    responses = await asyncio.gather(
        *(client.post("/v1/checkout", json=body, headers=headers) for _ in range(50))
    )

    stored = [r for r in responses if r.status_code == 201]
    busy = [r for r in responses if r.status_code == 409]
    assert len(stored) + len(busy) == 50, sorted({r.status_code for r in responses})
    assert stored, "one request must have completed"
    assert busy, "the latency should have kept the first request in flight"
    assert len({r.content for r in stored}) == 1
    for response in busy:
        problem = response.json()
        assert response.headers["content-type"] == PROBLEM
        assert problem["type"] == "/problems/idempotency-key-in-progress"
        assert "in progress" in problem["detail"]
    assert len(provider.charges) == 1
    assert len(await orders_of(app, buyer.user_id)) == 1
    assert len(await events.of(OrderPaid)) == 1

    retry = await client.post("/v1/checkout", json=body, headers=headers)
    assert retry.status_code == 201
    assert retry.content == stored[0].content
    assert len(provider.charges) == 1


async def test_timeout_leaves_a_pending_order_and_a_retry_replays(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    product = await make_product()
    headers = buyer.with_key()
    first = await client.post(
        "/v1/checkout", json=cart(product, pay_with="tok_timeout"), headers=headers
    )
    again = await client.post(
        "/v1/checkout", json=cart(product, pay_with="tok_timeout"), headers=headers
    )

    assert first.status_code == again.status_code == 504
    # The timeout gave the key's lease up: the retry asked the provider again (still nothing
    # charged) and answers the same problem, under its own request id.
    same = {k: v for k, v in first.json().items() if k != "request_id"}
    assert {k: v for k, v in again.json().items() if k != "request_id"} == same
    [(order, payment)] = await orders_of(app, buyer.user_id)
    assert (order.status, payment.status, payment.provider_charge_id) == (
        "pending",
        "pending",
        None,
    )
    order_view = await client.get(f"/v1/orders/{order.id}", headers=buyer.headers)
    assert order_view.json()["status"] == "pending"
    assert provider.charges == []
    assert (await events.all()) == []
