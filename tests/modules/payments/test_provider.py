"""The fake provider behaves like an external one: a shared, durable ledger, lookups, webhooks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.bootstrap import use_payments_provider
from app.modules.payments.interface import RefundIssued
from app.modules.payments.models import Order, Payment, Refund, WebhookEvent
from app.modules.payments.providers import FakePaymentProvider, ProviderError, WebhookTarget
from app.platform.config import Settings
from tests.helpers import wait_for
from tests.modules.payments.conftest import (
    WEBHOOK_SECRET,
    Caller,
    CommittedEvents,
    Interrupting,
    ProductFactory,
)

HOOK_DELAY_MS = 5000  # late enough that "not yet" is observable, short enough for a test


async def test_a_charge_made_by_one_process_is_refunded_by_another(settings: Settings) -> None:
    """Separate instances (workers, or a server restarted after kill -9) share one ledger."""
    url = str(settings.database_url)
    first, second = FakePaymentProvider(url), FakePaymentProvider(url)
    reference = str(uuid.uuid4())
    try:
        charged = await first.charge(
            amount=2500, currency="EUR", token="tok_success", reference=reference,
            idempotency_key=f"charge:{reference}",
        )  # fmt: skip
        await first.aclose()  # the first process is gone; its ledger is not

        again = await second.charge(
            amount=2500, currency="EUR", token="tok_success", reference=reference,
            idempotency_key=f"charge:{reference}",
        )  # fmt: skip
        assert again.charge_id == charged.charge_id  # idempotent across processes

        found = await second.find_charge(reference=reference)
        assert found is not None
        assert (found.status, found.charge_id, found.amount) == (
            "succeeded",
            charged.charge_id,
            2500,
        )
        assert await second.find_charge(reference=str(uuid.uuid4())) is None

        assert charged.charge_id is not None
        refund_ref = str(uuid.uuid4())
        refund = await second.refund(
            charge_id=charged.charge_id, amount=1000, currency="EUR", reference=refund_ref,
            idempotency_key=refund_ref,
        )  # fmt: skip
        record = await second.find_refund(reference=refund_ref)
        assert record is not None
        assert (record.refund_id, record.amount) == (refund.refund_id, 1000)
        with pytest.raises(ProviderError, match="more than was charged"):
            await second.refund(
                charge_id=charged.charge_id, amount=1501, currency="EUR",
                reference="r2", idempotency_key=str(uuid.uuid4()),
            )  # fmt: skip
        assert await second.refunded_total([charged.charge_id]) == 1000
    finally:
        await first.aclose()
        await second.aclose()


@pytest.fixture
async def hooked(
    app: FastAPI, settings: Settings, provider: FakePaymentProvider
) -> AsyncIterator[Interrupting]:
    """A provider sending its webhooks into the app, late and newest first (``install`` it)."""
    target = WebhookTarget(
        url="http://testserver/v1/payments/webhooks/provider",
        secret=WEBHOOK_SECRET,
        delay_ms=HOOK_DELAY_MS,
        reorder=True,
        transport=httpx.ASGITransport(app=app),
    )
    sender = FakePaymentProvider(str(settings.database_url), webhooks=target, poll_interval=0.05)
    await sender.start()
    yield Interrupting(sender)
    await sender.aclose()


async def _payment(app: FastAPI, order_id: str) -> tuple[str, str]:
    async with app.state.db.session() as session:
        row = (
            await session.execute(
                select(Order.status, Payment.status)
                .join(Payment, Payment.order_id == Order.id)
                .where(Order.id == uuid.UUID(order_id))
            )
        ).one()
    return row[0], row[1]


async def test_a_pending_charge_is_settled_by_the_providers_late_webhook(
    app: FastAPI,
    client: httpx.AsyncClient,
    hooked: Interrupting,
    make_product: ProductFactory,
    buyer: Caller,
) -> None:
    use_payments_provider(app, hooked)
    product = await make_product(price=4100)
    body = {"items": [{"product_id": product["id"]}], "payment_token": "tok_pending"}
    accepted = await client.post("/v1/checkout", json=body, headers=buyer.with_key())
    assert accepted.status_code == 202, accepted.text
    order_id = accepted.json()["id"]
    async with app.state.db.session() as session:
        reference = await session.scalar(
            select(Payment.id).where(Payment.order_id == uuid.UUID(order_id))
        )

    await hooked.real.settle_pending(str(reference), succeeded=True)
    assert await _payment(app, order_id) == ("pending", "pending")  # the webhook is late

    async def paid() -> bool:
        return await _payment(app, order_id) == ("paid", "succeeded")

    await wait_for(paid, timeout=60)


async def test_refund_webhooks_arrive_out_of_order_and_settle_each_refund_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    hooked: Interrupting,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    product = await make_product(price=3000)
    body = {"items": [{"product_id": product["id"]}], "payment_token": "tok_success"}
    order_id = (await client.post("/v1/checkout", json=body, headers=buyer.with_key())).json()["id"]
    # Charged through the app's usual provider: the ledger is shared, only refunds send hooks.
    use_payments_provider(app, hooked)
    refund_ids = []
    for amount in (1000, 2000):  # both answers lost: only the webhooks can tell us
        hooked.die = "lost"
        lost = await client.post(
            f"/v1/orders/{order_id}/refund", json={"amount": amount}, headers=buyer.with_key()
        )
        assert lost.status_code == 504, lost.text
        refund_ids.append(lost.json()["refund_id"])

    async def statuses() -> list[str]:
        async with app.state.db.session() as session:
            rows = await session.scalars(
                select(Refund.status).where(Refund.order_id == uuid.UUID(order_id))
            )
            return sorted(rows)

    async def settled() -> bool:
        return await statuses() == ["succeeded", "succeeded"]

    await wait_for(settled, timeout=60)
    async with app.state.db.session() as session:
        order = await session.get(Order, uuid.UUID(order_id))
        assert order is not None
        assert (order.status, order.refunded_amount) == ("refunded", 3000)
        hooks = (
            await session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.type == "charge.refunded")
                .order_by(WebhookEvent.received_at.desc())
                .limit(2)
            )
        ).all()
    # Newest first: the second refund's event reached us before the first's.
    assert [h.payload["data"]["refund_reference"] for h in hooks] == refund_ids
    assert {h.outcome for h in hooks} == {"applied"}
    issued = await events.of(RefundIssued)
    assert sorted(e.amount for e in issued) == [1000, 2000]
