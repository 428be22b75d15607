"""Checkout: test tokens, idempotency keys (Stripe's rules), no order paid without a charge."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.modules.payments.interface import OrderPaid, PaymentFailed
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

# token, HTTP status, order status, payment status, metric outcome, event, failure code
TOKENS = [
    ("tok_success", 201, "paid", "succeeded", "succeeded", OrderPaid, None),
    ("tok_declined", 402, "failed", "failed", "declined", PaymentFailed, "card_declined"),
    (
        "tok_insufficient_funds",
        402,
        "failed",
        "failed",
        "declined",
        PaymentFailed,
        "insufficient_funds",
    ),
    ("tok_provider_error", 502, "failed", "failed", "error", PaymentFailed, "provider_error"),
    ("tok_timeout", 504, "pending", "pending", "error", None, None),
    ("tok_pending", 202, "pending", "pending", "pending", None, None),
    ("tok_unknown_thing", 402, "failed", "failed", "declined", PaymentFailed, "invalid_token"),
]


@pytest.mark.parametrize(
    ("token", "http", "order_status", "payment_status", "outcome", "event_type", "code"), TOKENS
)
async def test_each_token_gives_its_documented_outcome_and_metric(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
    token: str,
    http: int,
    order_status: str,
    payment_status: str,
    outcome: str,
    event_type: type | None,
    code: str | None,
) -> None:
    product = await make_product(price=1250)
    before = metric("payments_checkouts_total", outcome=outcome)
    durations = metric("payments_checkout_duration_seconds_count")

    response = await client.post(
        "/v1/checkout", json=cart(product, 2, pay_with=token), headers=buyer.with_key()
    )

    assert response.status_code == http, response.text
    body = response.json()
    if http >= 400:
        assert response.headers["content-type"] == PROBLEM
        assert body["order_status"] == order_status
        order_id = uuid.UUID(body["order_id"])
    else:
        assert body["status"] == order_status
        assert body["total_amount"] == 2500
        assert body["items"][0]["product_name"] == product["name"]
        order_id = uuid.UUID(body["id"])
    if code is not None:
        assert body["failure_code"] == code

    [(order, payment)] = await orders_of(app, buyer.user_id)
    assert order.id == order_id
    assert (order.status, payment.status) == (order_status, payment_status)
    assert payment.failure_code == code
    assert order.total_amount == payment.amount == 2500
    # Paid only with a charge at the provider; a timeout charged nothing and is not paid.
    charged = [c for c in provider.charges if c.reference == str(payment.id)]
    assert len(charged) == (1 if token in ("tok_success", "tok_pending") else 0)
    if order.status == "paid":
        assert payment.provider_charge_id == charged[0].charge_id

    assert metric("payments_checkouts_total", outcome=outcome) == before + 1
    assert metric("payments_checkout_duration_seconds_count") == durations + 1
    if event_type is None:
        assert (await events.all()) == []
    else:
        [published] = await events.all()
        assert isinstance(published, event_type)
        assert published.order_id == order.id
        assert published.user_id == buyer.user_id
        assert (published.amount, published.currency) == (2500, "EUR")


async def test_mixed_currency_cart_is_refused_and_the_key_stays_usable(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
) -> None:
    euro = await make_product(currency="EUR")
    dollar = await make_product(currency="usd")
    headers = buyer.with_key()
    mixed = {
        "items": [{"product_id": euro["id"]}, {"product_id": dollar["id"]}],
        "payment_token": "tok_success",
    }
    response = await client.post("/v1/checkout", json=mixed, headers=headers)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/mixed-currencies"
    assert response.json()["currencies"] == ["EUR", "USD"]
    assert await orders_of(app, buyer.user_id) == []
    assert provider.charges == []
    # Nothing ran, so nothing is stored: the corrected cart may use the key.
    fixed = await client.post("/v1/checkout", json=cart(euro), headers=headers)
    assert fixed.status_code == 201


async def test_prices_come_from_the_catalog_at_purchase_time(
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    admin: Caller,
) -> None:
    a = await make_product(price=300)
    b = await make_product(price=1999)
    body = {
        "items": [{"product_id": a["id"], "quantity": 3}, {"product_id": b["id"], "quantity": 1}],
        "payment_token": "tok_success",
        "total_amount": 1,
    }
    refused = await client.post("/v1/checkout", json=body, headers=buyer.with_key())
    assert refused.status_code == 422  # a client cannot name its own total
    del body["total_amount"]
    order = (await client.post("/v1/checkout", json=body, headers=buyer.with_key())).json()
    assert order["total_amount"] == 3 * 300 + 1999
    assert [i["line_amount"] for i in order["items"]] == [900, 1999]
    assert provider.charges[0].amount == 2899

    # A later price change or rename does not rewrite the order.
    await client.patch(
        f"/v1/products/{a['id']}",
        json={"price_amount": 1, "name": "renamed"},
        headers=admin.headers,
    )
    again = (await client.get(f"/v1/orders/{order['id']}", headers=buyer.headers)).json()
    assert again["items"][0]["product_name"] == a["name"]
    assert again["total_amount"] == 2899


@pytest.mark.parametrize(
    ("headers", "body", "status", "slug"),
    [
        ({}, None, 400, "idempotency-key-required"),
        ({"Idempotency-Key": "has spaces"}, None, 400, "idempotency-key-required"),
        (None, {"items": [], "payment_token": "tok_success"}, 422, "validation-error"),
        (None, {"items": [{"product_id": "nope"}], "payment_token": "x"}, 422, "validation-error"),
        (
            None,
            {"items": [{"product_id": str(uuid.uuid4())}], "payment_token": "tok_success"},
            422,
            "checkout-invalid",
        ),
        (
            None,
            {"items": [{"product_id": str(uuid.uuid4()), "quantity": 0}]},
            422,
            "validation-error",
        ),
    ],
)
async def test_bad_checkout_input_is_a_problem(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    buyer: Caller,
    headers: dict[str, str] | None,
    body: dict[str, Any] | None,
    status: int,
    slug: str,
) -> None:
    body = body or {"items": [{"product_id": str(uuid.uuid4())}], "payment_token": "tok_success"}
    sent = buyer.with_key() if headers is None else {**buyer.headers, **headers}
    response = await client.post("/v1/checkout", json=body, headers=sent)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == f"/problems/{slug}"
    assert await orders_of(app, buyer.user_id) == []


async def test_inactive_and_duplicate_products_cannot_be_bought(
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    admin: Caller,
) -> None:
    product = await make_product()
    twice = {
        "items": [{"product_id": product["id"]}, {"product_id": product["id"]}],
        "payment_token": "tok_success",
    }
    response = await client.post("/v1/checkout", json=twice, headers=buyer.with_key())
    assert (response.status_code, response.json()["type"]) == (422, "/problems/checkout-invalid")

    await client.delete(f"/v1/products/{product['id']}", headers=admin.headers)
    response = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key())
    assert response.status_code == 422
    assert response.json()["product_ids"] == [product["id"]]
    assert provider.charges == []


async def test_checkout_needs_a_caller(
    client: httpx.AsyncClient, make_product: ProductFactory
) -> None:
    product = await make_product()
    response = await client.post(
        "/v1/checkout", json=cart(product), headers={"Idempotency-Key": "k"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
