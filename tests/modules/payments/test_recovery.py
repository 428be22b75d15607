"""Interrupted checkouts and refunds: resumed by a retry, settled by reconciliation, never twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update

from app.bootstrap import use_payments_provider
from app.modules.payments import service
from app.modules.payments.interface import OrderPaid, PaymentFailed, RefundIssued
from app.modules.payments.models import IdempotencyKey, Order, Payment, Refund
from app.modules.payments.providers import FakePaymentProvider, RefundResult
from app.modules.payments.schemas import CheckoutRequest
from app.platform.config import Settings
from tests.helpers import wait_for
from tests.modules.payments.conftest import (
    Caller,
    CommittedEvents,
    Died,
    Interrupting,
    ProductFactory,
    metric,
    reconciliation,
)

PROBLEM = "application/problem+json"


def cart(product: dict[str, Any], token: str = "tok_success") -> dict[str, Any]:  # noqa: S107
    return {"items": [{"product_id": product["id"]}], "payment_token": token}


async def died_checkout(
    app: FastAPI, flaky: Interrupting, settings: Settings, buyer: Caller, body: dict[str, Any],
    key: str, when: str,
) -> None:  # fmt: skip
    """A checkout whose process died ``when`` (before/after) the provider charged."""
    flaky.die = when
    ports = service.PaymentsPorts(provider=flaky)
    with pytest.raises(Died):
        await service.CheckoutService(app.state.db.session, settings, ports).checkout(
            user_id=buyer.user_id,
            key=key,
            request=CheckoutRequest.model_validate(body),
        )


async def lapse_leases(app: FastAPI, user_id: uuid.UUID) -> None:
    """Fast-forward past the lease, instead of waiting APP_PAYMENTS_IDEMPOTENCY_LEASE_SECONDS."""
    async with app.state.db.session.begin() as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.user_id == user_id)
            .values(locked_until=text("now() - interval '1 second'"))
        )


async def order_rows(app: FastAPI, user_id: uuid.UUID) -> list[tuple[str, str, str | None]]:
    async with app.state.db.session() as session:
        rows = await session.execute(
            select(Order.status, Payment.status, Payment.failure_code)
            .join(Payment, Payment.order_id == Order.id)
            .where(Order.user_id == user_id)
        )
        return [tuple(r) for r in rows.all()]


async def references(app: FastAPI, user_id: uuid.UUID) -> list[str]:
    async with app.state.db.session() as session:
        ids = await session.scalars(
            select(Payment.id)
            .join(Order, Order.id == Payment.order_id)
            .where(Order.user_id == user_id)
        )
        return [str(i) for i in ids]


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_checkout_that_died_resumes_when_its_lease_lapses(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    flaky: Interrupting,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
    when: str,
) -> None:
    product = await make_product(price=1900)
    key = str(uuid.uuid4())
    await died_checkout(app, flaky, settings, buyer, cart(product), key, when)

    # While the lease runs, a retry is told to wait about that long: not 24 hours.
    busy = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key(key))
    assert busy.status_code == 409, busy.text
    assert busy.json()["type"] == "/problems/idempotency-key-in-progress"
    assert 1 <= int(busy.headers["retry-after"]) <= settings.payments_idempotency_lease_seconds

    await lapse_leases(app, buyer.user_id)
    resumed = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key(key))
    assert resumed.status_code == 201, resumed.text
    assert await order_rows(app, buyer.user_id) == [("paid", "succeeded", None)]
    [reference] = await references(app, buyer.user_id)
    assert len(await flaky.real.ledger_charges([reference])) == 1
    assert len(await events.of(OrderPaid)) == 1

    replay = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key(key))
    assert (replay.status_code, replay.content) == (201, resumed.content)
    assert replay.headers["idempotent-replayed"] == "true"


async def test_reconciliation_settles_a_charge_nobody_retried(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    flaky: Interrupting,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    product = await make_product(price=2300)
    key = str(uuid.uuid4())
    await died_checkout(app, flaky, settings, buyer, cart(product), key, "after")

    leased = await reconciliation(app, settings, flaky.real).reconcile(older_than=0)
    assert leased.payments["in_flight"] >= 1  # the dead request's lease still runs: hands off
    assert await order_rows(app, buyer.user_id) == [("pending", "pending", None)]

    await lapse_leases(app, buyer.user_id)
    settled = metric("payments_reconciliations_total", kind="payment", outcome="succeeded")
    await reconciliation(app, settings, flaky.real).reconcile(older_than=0)
    assert await order_rows(app, buyer.user_id) == [("paid", "succeeded", None)]
    assert metric("payments_reconciliations_total", kind="payment", outcome="succeeded") > settled
    assert len(await events.of(OrderPaid)) == 1

    # The key now holds the outcome: a late retry replays it, charging nothing more.
    retry = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key(key))
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    [reference] = await references(app, buyer.user_id)
    assert len(await flaky.real.ledger_charges([reference])) == 1


async def test_reconciliation_fails_a_charge_the_provider_never_saw_and_frees_the_key(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    flaky: Interrupting,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
) -> None:
    product = await make_product(price=700)
    key = str(uuid.uuid4())
    await died_checkout(app, flaky, settings, buyer, cart(product), key, "before")
    await lapse_leases(app, buyer.user_id)

    await reconciliation(app, settings, flaky.real).reconcile(older_than=0)
    assert await order_rows(app, buyer.user_id) == [("failed", "failed", "not_charged")]
    [failed] = await events.of(PaymentFailed)
    assert failed.reason == "not_charged"

    # Released: the same key is a new checkout now.
    again = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key(key))
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert sorted(await order_rows(app, buyer.user_id)) == [
        ("failed", "failed", "not_charged"),
        ("paid", "succeeded", None),
    ]


async def test_the_pending_age_gauge_sees_what_waits(
    app: FastAPI,
    settings: Settings,
    flaky: Interrupting,
    make_product: ProductFactory,
    buyer: Caller,
) -> None:
    product = await make_product()
    await died_checkout(app, flaky, settings, buyer, cart(product), str(uuid.uuid4()), "before")
    [reference] = await references(app, buyer.user_id)
    async with app.state.db.session.begin() as session:
        await session.execute(
            update(Payment)
            .where(Payment.id == uuid.UUID(reference))
            .values(created_at=text("now() - interval '1 hour'"))
        )
    await reconciliation(app, settings, flaky.real).observe_pending()
    assert metric("payments_pending_oldest_age_seconds", kind="payment") >= 3600
    await lapse_leases(app, buyer.user_id)
    await reconciliation(app, settings, flaky.real).reconcile(older_than=0)
    # Settled: what still waits (other tests' charges the provider itself holds) is young.
    assert metric("payments_pending_oldest_age_seconds", kind="payment") < 3600


# --- refunds ---------------------------------------------------------------------------------


async def paid(client: httpx.AsyncClient, make_product: ProductFactory, buyer: Caller) -> str:
    product = await make_product(price=5000)
    response = await client.post("/v1/checkout", json=cart(product), headers=buyer.with_key())
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def refund_state(app: FastAPI, order_id: str) -> tuple[str, int, list[str]]:
    async with app.state.db.session() as session:
        order = await session.get(Order, uuid.UUID(order_id))
        statuses = await session.scalars(
            select(Refund.status).where(Refund.order_id == uuid.UUID(order_id))
        )
        assert order is not None
        return order.status, order.refunded_amount, sorted(statuses)


async def provider_refunded(app: FastAPI, provider: FakePaymentProvider, order_id: str) -> int:
    async with app.state.db.session() as session:
        charge = await session.scalar(
            select(Payment.provider_charge_id).where(Payment.order_id == uuid.UUID(order_id))
        )
    return await provider.refunded_total([str(charge)])


@pytest.mark.parametrize("settled_by", ["retry", "reconciliation"])
async def test_a_refund_whose_answer_was_lost_is_settled_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    flaky: Interrupting,
    make_product: ProductFactory,
    buyer: Caller,
    events: CommittedEvents,
    settled_by: str,
) -> None:
    order_id = await paid(client, make_product, buyer)
    headers = buyer.with_key()
    flaky.die = "lost"  # the provider refunds; its answer never reaches us
    lost = await client.post(
        f"/v1/orders/{order_id}/refund", json={"amount": 1200}, headers=headers
    )
    assert lost.status_code == 504, lost.text
    assert lost.headers["content-type"] == PROBLEM
    # Our records say what is known: a pending refund, no money moved yet on our side.
    assert await refund_state(app, order_id) == ("paid", 0, ["pending"])
    assert await provider_refunded(app, flaky.real, order_id) == 1200

    if settled_by == "retry":
        again = await client.post(
            f"/v1/orders/{order_id}/refund", json={"amount": 1200}, headers=headers
        )
        assert again.status_code == 201, again.text
        assert again.json()["id"] == lost.json()["refund_id"]
    else:
        report = await reconciliation(app, settings, flaky.real).reconcile(older_than=0)
        assert report.refunds["succeeded"] >= 1
        replay = await client.post(
            f"/v1/orders/{order_id}/refund", json={"amount": 1200}, headers=headers
        )
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"

    assert await refund_state(app, order_id) == ("partially_refunded", 1200, ["succeeded"])
    assert await provider_refunded(app, flaky.real, order_id) == 1200
    assert [e.amount for e in await events.of(RefundIssued)] == [1200]


async def test_a_refund_the_provider_never_made_is_failed_and_frees_its_amount(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    flaky: Interrupting,
    make_product: ProductFactory,
    buyer: Caller,
) -> None:
    order_id = await paid(client, make_product, buyer)
    flaky.die = "before"
    with pytest.raises(Died):
        await client.post(
            f"/v1/orders/{order_id}/refund", json={"amount": 5000}, headers=buyer.with_key()
        )
    # The pending refund holds its amount back meanwhile.
    held = await client.post(
        f"/v1/orders/{order_id}/refund", json={"amount": 1}, headers=buyer.with_key()
    )
    assert held.status_code == 409, held.text

    await reconciliation(app, settings, flaky.real).reconcile(older_than=0)
    assert await refund_state(app, order_id) == ("paid", 0, ["failed"])
    after = await client.post(
        f"/v1/orders/{order_id}/refund", json={"amount": 5000}, headers=buyer.with_key()
    )
    assert after.status_code == 201
    assert await provider_refunded(app, flaky.real, order_id) == 5000


class Gated(Interrupting):
    """Refunds wait at a gate the test opens: the provider "thinks" exactly as long as needed."""

    def __init__(self, real: FakePaymentProvider) -> None:
        super().__init__(real)
        self.gate = asyncio.Event()

    async def refund(self, **kwargs: Any) -> RefundResult:
        await self.gate.wait()
        return await self.real.refund(**kwargs)


async def test_no_row_stays_locked_while_the_provider_thinks_about_a_refund(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    provider: FakePaymentProvider,
    make_product: ProductFactory,
    buyer: Caller,
) -> None:
    order_id = await paid(client, make_product, buyer)
    gated = Gated(provider)
    use_payments_provider(app, gated)
    app.state.settings = settings.model_copy(update={"payments_provider_timeout_seconds": 60.0})
    refund = asyncio.create_task(
        client.post(f"/v1/orders/{order_id}/refund", json={}, headers=buyer.with_key())
    )
    try:
        async with app.state.db.session() as session:

            async def recorded() -> bool:
                found = await session.scalar(
                    select(Refund.id).where(
                        Refund.order_id == uuid.UUID(order_id), Refund.status == "pending"
                    )
                )
                await session.rollback()
                return found is not None

            await wait_for(recorded, timeout=30)
            # The provider is being asked now; NOWAIT raises if the refund still held a row.
            for table, column in (("payments_order", "id"), ("payments_payment", "order_id")):
                await session.execute(
                    text(f"SELECT 1 FROM {table} WHERE {column} = :id FOR UPDATE NOWAIT"),  # noqa: S608
                    {"id": order_id},
                )
            await session.rollback()
    finally:
        gated.gate.set()
    assert (await refund).status_code == 201
    assert await refund_state(app, order_id) == ("refunded", 5000, ["succeeded"])
