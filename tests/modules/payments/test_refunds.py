"""Refunds: full or partial, never more than was paid, once per idempotency key."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.modules.payments.interface import RefundIssued
from app.modules.payments.models import Order, Payment, Refund
from app.modules.payments.providers import FakePaymentProvider
from tests.modules.payments.conftest import Caller, CommittedEvents, ProductFactory, metric

PROBLEM = "application/problem+json"


async def paid_order(
    client: httpx.AsyncClient,
    make_product: ProductFactory,
    buyer: Caller,
    price: int = 5000,
    pay_with: str = "tok_success",
) -> dict[str, Any]:
    product = await make_product(price=price)
    body = {"items": [{"product_id": product["id"]}], "payment_token": pay_with}
    response = await client.post("/v1/checkout", json=body, headers=buyer.with_key())
    assert response.status_code in (201, 402), response.text
    order: dict[str, Any] = response.json()
    return order


async def state(app: FastAPI, order_id: str) -> tuple[str, int, int, int]:
    """(order status, order refunded, payment refunded, refund rows)."""
    async with app.state.db.session() as session:
        order = await session.get(Order, uuid.UUID(order_id))
        payment = (
            await session.scalars(select(Payment).where(Payment.order_id == uuid.UUID(order_id)))
        ).one()
        refunds = await session.scalar(
            select(func.count()).select_from(Refund).where(Refund.order_id == uuid.UUID(order_id))
        )
        assert order is not None
        return order.status, order.refunded_amount, payment.refunded_amount, int(refunds or 0)


async def test_partial_then_full_refund(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    order = await paid_order(client, make_product, buyer)
    before = metric("payments_refunds_total")

    part = await client.post(
        f"/v1/orders/{order['id']}/refund",
        json={"amount": 1500, "reason": "scratched"},
        headers=buyer.with_key(),
    )
    assert part.status_code == 201, part.text
    assert (part.json()["amount"], part.json()["currency"]) == (1500, "EUR")
    assert await state(app, order["id"]) == ("partially_refunded", 1500, 1500, 1)

    rest = await client.post(f"/v1/orders/{order['id']}/refund", json={}, headers=buyer.with_key())
    assert rest.status_code == 201
    assert rest.json()["amount"] == 3500
    assert await state(app, order["id"]) == ("refunded", 5000, 5000, 2)
    view = await client.get(f"/v1/orders/{order['id']}", headers=buyer.headers)
    assert (view.json()["status"], view.json()["refunded_amount"]) == ("refunded", 5000)

    assert sum(amount for _, amount in provider.refunds) == 5000
    assert metric("payments_refunds_total") == before + 2
    issued = await events.of(RefundIssued)
    assert [(e.amount, e.remaining_amount) for e in issued] == [(1500, 3500), (3500, 0)]
    assert all(e.user_id == buyer.user_id for e in issued)


async def test_refund_over_the_paid_amount_is_refused(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    order = await paid_order(client, make_product, buyer, price=2000)
    too_much = await client.post(
        f"/v1/orders/{order['id']}/refund", json={"amount": 2001}, headers=buyer.with_key()
    )
    assert too_much.status_code == 422
    assert too_much.headers["content-type"] == PROBLEM
    assert too_much.json()["type"] == "/problems/refund-exceeds-payment"
    assert too_much.json()["refundable_amount"] == 2000

    await client.post(
        f"/v1/orders/{order['id']}/refund", json={"amount": 1200}, headers=buyer.with_key()
    )
    over = await client.post(
        f"/v1/orders/{order['id']}/refund", json={"amount": 801}, headers=buyer.with_key()
    )
    assert over.status_code == 422
    assert over.json()["refundable_amount"] == 800
    assert await state(app, order["id"]) == ("partially_refunded", 1200, 1200, 1)
    assert provider.refunds == [(provider.charges[0].charge_id, 1200)]
    assert len(await events.of(RefundIssued)) == 1

    await client.post(f"/v1/orders/{order['id']}/refund", json={}, headers=buyer.with_key())
    done = await client.post(f"/v1/orders/{order['id']}/refund", json={}, headers=buyer.with_key())
    assert done.status_code == 409
    assert done.json()["type"] == "/problems/order-not-refundable"


async def test_two_identical_refund_requests_refund_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    order = await paid_order(client, make_product, buyer)
    headers = buyer.with_key()
    before = metric("payments_refunds_total")

    first = await client.post(
        f"/v1/orders/{order['id']}/refund", json={"amount": 700}, headers=headers
    )
    second = await client.post(
        f"/v1/orders/{order['id']}/refund", json={"amount": 700}, headers=headers
    )

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert await state(app, order["id"]) == ("partially_refunded", 700, 700, 1)
    assert len(provider.refunds) == 1
    assert len(await events.of(RefundIssued)) == 1
    assert metric("payments_refunds_total") == before + 1

    other_amount = await client.post(
        f"/v1/orders/{order['id']}/refund", json={"amount": 800}, headers=headers
    )
    assert other_amount.status_code == 422
    assert other_amount.json()["type"] == "/problems/idempotency-key-reused"


async def test_concurrent_identical_refunds_refund_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
) -> None:
    order = await paid_order(client, make_product, buyer)
    provider.latency = 0.1
    headers = buyer.with_key()
    responses = await asyncio.gather(
        *(
            client.post(f"/v1/orders/{order['id']}/refund", json={}, headers=headers)
            for _ in range(5)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await state(app, order["id"]) == ("refunded", 5000, 5000, 1)
    assert len(provider.refunds) == 1


async def test_concurrent_different_refunds_never_exceed_the_payment(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
) -> None:
    order = await paid_order(client, make_product, buyer, price=1000)
    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/orders/{order['id']}/refund", json={"amount": 300}, headers=buyer.with_key()
            )
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 201, 201, 422, 422]
    assert await state(app, order["id"]) == ("partially_refunded", 900, 900, 3)


async def test_unpaid_or_foreign_orders_cannot_be_refunded(
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    other_buyer: Caller,
    admin: Caller,
) -> None:
    declined = await paid_order(client, make_product, buyer, pay_with="tok_declined")
    response = await client.post(
        f"/v1/orders/{declined['order_id']}/refund", json={}, headers=buyer.with_key()
    )
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/order-not-refundable"

    order = await paid_order(client, make_product, buyer)
    foreign = await client.post(
        f"/v1/orders/{order['id']}/refund", json={}, headers=other_buyer.with_key()
    )
    assert foreign.status_code == 404
    no_key = await client.post(f"/v1/orders/{order['id']}/refund", json={}, headers=buyer.headers)
    assert no_key.status_code == 400
    assert no_key.json()["type"] == "/problems/idempotency-key-required"
    for bad in ({"amount": 0}, {"amount": -5}, {"amount": "lots"}, {"amount": 1, "extra": 1}):
        invalid = await client.post(
            f"/v1/orders/{order['id']}/refund", json=bad, headers=buyer.with_key()
        )
        assert invalid.status_code == 422, bad
        assert invalid.headers["content-type"] == PROBLEM
    # Support staff (admins) may refund any order.
    by_admin = await client.post(
        f"/v1/orders/{order['id']}/refund", json={"amount": 1}, headers=admin.with_key()
    )
    assert by_admin.status_code == 201
