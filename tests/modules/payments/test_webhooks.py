"""Provider webhooks: signed, fresh, applied once; asynchronous outcomes settle pending orders."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.modules.payments.interface import OrderPaid, PaymentFailed
from app.modules.payments.models import Order, Payment, WebhookEvent
from app.modules.payments.providers import FakePaymentProvider
from app.modules.payments.providers.signing import SignatureError, StaleTimestamp, sign, verify
from tests.modules.payments.conftest import (
    WEBHOOK_SECRET,
    Caller,
    CommittedEvents,
    ProductFactory,
    metric,
    signed_webhook,
)

URL = "/v1/payments/webhooks/provider"
PROBLEM = "application/problem+json"


async def pending_order(
    client: httpx.AsyncClient,
    make_product: ProductFactory,
    buyer: Caller,
    pay_with: str = "tok_pending",
) -> str:
    product = await make_product(price=3100)
    body = {"items": [{"product_id": product["id"]}], "payment_token": pay_with}
    response = await client.post("/v1/checkout", json=body, headers=buyer.with_key())
    assert response.status_code in (202, 504), response.text
    data = response.json()
    return str(data.get("id") or data["order_id"])


async def payment_of(app: FastAPI, order_id: str) -> tuple[str, str, str | None]:
    async with app.state.db.session() as session:
        order = await session.get(Order, uuid.UUID(order_id))
        payment = (
            await session.scalars(select(Payment).where(Payment.order_id == uuid.UUID(order_id)))
        ).one()
        assert order is not None
        return order.status, payment.status, payment.failure_code


async def inbox_count(app: FastAPI, event_id: str) -> int:
    async with app.state.db.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.provider_event_id == event_id)
        )
        return int(count or 0)


def charge_event(provider: FakePaymentProvider, kind: str, **data: Any) -> dict[str, Any]:
    charge = provider.charges[-1]
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": f"charge.{kind}",
        "data": {"charge_id": charge.charge_id, "reference": charge.reference, **data},
    }


async def test_a_pending_payment_succeeds_later_and_a_replay_changes_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    order_id = await pending_order(client, make_product, buyer)
    assert await payment_of(app, order_id) == ("pending", "pending", None)
    payload = charge_event(provider, "succeeded")
    body, headers = signed_webhook(payload)
    applied = metric("payments_webhooks_total", outcome="applied")
    duplicates = metric("payments_webhooks_total", outcome="duplicate")

    first = await client.post(URL, content=body, headers=headers)
    assert first.status_code == 200
    assert first.json() == {"received": True, "outcome": "applied"}
    assert await payment_of(app, order_id) == ("paid", "succeeded", None)
    [paid] = await events.of(OrderPaid)
    assert (str(paid.order_id), paid.user_id, paid.amount) == (order_id, buyer.user_id, 3100)

    # The provider delivers the same event again (same id, freshly signed): ignored.
    body, headers = signed_webhook(payload)
    again = await client.post(URL, content=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert len(await events.of(OrderPaid)) == 1
    assert await inbox_count(app, payload["id"]) == 1
    assert metric("payments_webhooks_total", outcome="applied") == applied + 1
    assert metric("payments_webhooks_total", outcome="duplicate") == duplicates + 1

    # A contradicting later event for a settled payment does not flip it.
    body, headers = signed_webhook(charge_event(provider, "failed", failure_code="card_declined"))
    late = await client.post(URL, content=body, headers=headers)
    assert late.json()["outcome"] == "ignored"
    assert await payment_of(app, order_id) == ("paid", "succeeded", None)
    assert (await events.of(PaymentFailed)) == []


async def test_a_pending_payment_fails_later(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    order_id = await pending_order(client, make_product, buyer)
    body, headers = signed_webhook(charge_event(provider, "failed", failure_code="card_declined"))
    response = await client.post(URL, content=body, headers=headers)

    assert response.json()["outcome"] == "applied"
    assert await payment_of(app, order_id) == ("failed", "failed", "card_declined")
    [failed] = await events.of(PaymentFailed)
    assert (str(failed.order_id), failed.reason) == (order_id, "card_declined")
    refund = await client.post(f"/v1/orders/{order_id}/refund", json={}, headers=buyer.with_key())
    assert refund.status_code == 409


async def test_a_timed_out_order_is_settled_by_the_providers_webhook(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    """The recovery path of a provider timeout: the event names our payment as reference."""
    order_id = await pending_order(client, make_product, buyer, pay_with="tok_timeout")
    async with app.state.db.session() as session:
        payment = (
            await session.scalars(select(Payment).where(Payment.order_id == uuid.UUID(order_id)))
        ).one()
    payload = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "charge.succeeded",
        "data": {"charge_id": f"ch_{uuid.uuid4().hex}", "reference": str(payment.id)},
    }
    body, headers = signed_webhook(payload)
    response = await client.post(URL, content=body, headers=headers)

    assert response.json()["outcome"] == "applied"
    assert await payment_of(app, order_id) == ("paid", "succeeded", None)
    assert len(await events.of(OrderPaid, order_id=uuid.UUID(order_id))) == 1


@pytest.mark.parametrize(
    ("mangle", "slug", "outcome"),
    [
        ("bad_signature", "webhook-signature-invalid", "invalid_signature"),
        ("wrong_secret", "webhook-signature-invalid", "invalid_signature"),
        ("no_header", "webhook-signature-invalid", "invalid_signature"),
        ("garbled_header", "webhook-signature-invalid", "invalid_signature"),
        ("tampered_body", "webhook-signature-invalid", "invalid_signature"),
        ("stale", "webhook-timestamp-stale", "stale"),
        ("future", "webhook-timestamp-stale", "stale"),
    ],
)
async def test_refused_deliveries_change_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
    mangle: str,
    slug: str,
    outcome: str,
) -> None:
    order_id = await pending_order(client, make_product, buyer)
    payload = charge_event(provider, "succeeded")
    now = int(time.time())
    body, headers = signed_webhook(payload)
    if mangle == "bad_signature":
        headers["Provider-Signature"] = f"t={now},v1={'0' * 64}"
    elif mangle == "wrong_secret":
        body, headers = signed_webhook(payload, secret="not-the-secret")
    elif mangle == "no_header":
        del headers["Provider-Signature"]
    elif mangle == "garbled_header":
        headers["Provider-Signature"] = "t=soon,v1=abc"
    elif mangle == "tampered_body":
        body = body.replace(b"succeeded", b"failed")
    elif mangle == "stale":
        body, headers = signed_webhook(payload, timestamp=now - 301)
    elif mangle == "future":
        body, headers = signed_webhook(payload, timestamp=now + 360)  # 300 s tolerance + 60
    before = metric("payments_webhooks_total", outcome=outcome)

    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == f"/problems/{slug}"
    assert await payment_of(app, order_id) == ("pending", "pending", None)
    assert await inbox_count(app, payload["id"]) == 0
    assert (await events.all()) == []
    assert metric("payments_webhooks_total", outcome=outcome) == before + 1

    # The genuine delivery still goes through afterwards.
    body, headers = signed_webhook(payload)
    assert (await client.post(URL, content=body, headers=headers)).json()["outcome"] == "applied"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        # A body that does not parse is the platform's malformed body, as on every route.
        (b"not json", "malformed-body"),
        (b"[]", "webhook-malformed"),
        (b'{"id": 1, "type": "charge.succeeded", "data": {}}', "webhook-malformed"),
        (b'{"id": "e"}', "webhook-malformed"),
    ],
)
async def test_malformed_events_are_problems(
    client: httpx.AsyncClient, body: bytes, problem: str
) -> None:
    headers = {"Provider-Signature": sign(WEBHOOK_SECRET, body)}
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["type"] == f"/problems/{problem}"


async def test_unknown_events_and_charges_are_acknowledged_and_ignored(
    client: httpx.AsyncClient,
) -> None:
    for payload in (
        {"id": f"evt_{uuid.uuid4().hex}", "type": "customer.created", "data": {}},
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "charge.succeeded",
            "data": {"charge_id": "ch_x"},
        },
        {"id": f"evt_{uuid.uuid4().hex}", "type": "charge.failed", "data": {"reference": "nope"}},
    ):
        body, headers = signed_webhook(payload)
        response = await client.post(URL, content=body, headers=headers)
        assert response.status_code == 200
        assert response.json()["outcome"] == "ignored"


def test_signature_tolerance_is_five_minutes_both_ways() -> None:
    body = b'{"id": "evt"}'
    now = 1_800_000_000
    for skew in (-300, 0, 300):
        header = sign(WEBHOOK_SECRET, body, now + skew)
        assert verify(WEBHOOK_SECRET, header, body, tolerance=300, now=now) == now + skew
    for skew in (-301, 301):
        with pytest.raises(StaleTimestamp):
            verify(
                WEBHOOK_SECRET, sign(WEBHOOK_SECRET, body, now + skew), body, tolerance=300, now=now
            )
    with pytest.raises(SignatureError):
        verify(WEBHOOK_SECRET, sign("other", body, now), body, tolerance=300, now=now)
    # A header may carry several v1 signatures (secret rotation); one match suffices.
    rotated = f"t={now},v1={'f' * 64},{sign(WEBHOOK_SECRET, body, now).split(',')[1]}"
    assert verify(WEBHOOK_SECRET, rotated, body, tolerance=300, now=now) == now
