"""The listeners for auth's and payments' events keep analytics' own tables, idempotently."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from app.modules.analytics import listeners
from app.modules.auth.interface import EmailVerified, UserSignedUp
from app.modules.payments.interface import OrderPaid, PaymentFailed
from app.platform.events import Delivery

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def SignedUp(user_id: uuid.UUID) -> UserSignedUp:
    return UserSignedUp(
        user_id=user_id,
        email="u@example.test",
        verification_url="http://t/verify-email?token=x",
        expires_at=T0 + timedelta(days=1),
    )


def Verified(user_id: uuid.UUID) -> EmailVerified:
    return EmailVerified(user_id=user_id, email="u@example.test")


def OrderOutcome(
    order_id: uuid.UUID, user_id: uuid.UUID, amount: int, currency: str
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "payment_id": uuid.uuid4(),
        "user_id": user_id,
        "amount": amount,
        "currency": currency,
    }


async def _deliver(app: FastAPI, handler: Any, event: Any, at: datetime | None) -> None:
    """One delivery: the handler's work commits with it, as the dispatcher's does."""
    if isinstance(event, dict):  # a checkout outcome: the handler says which event it takes
        kind = PaymentFailed if handler is listeners.on_payment_failed else OrderPaid
        extra = {"reason": "card_declined"} if kind is PaymentFailed else {}
        event = kind(**event, **extra)
    async with app.state.db.session() as session:
        delivery = Delivery(
            id=uuid.uuid4(),
            event_id=uuid.uuid4(),
            listener="analytics.test",
            attempt=1,
            published_at=at or datetime.now(UTC),
            session_factory=lambda: session,
        )
        await handler(event, delivery)
        await session.commit()


async def _row(app: FastAPI, sql: str, key: uuid.UUID) -> dict[str, Any] | None:
    async with app.state.db.session() as session:
        row = (await session.execute(text(sql), {"k": key})).first()
        return dict(row._mapping) if row else None


async def test_signup_then_verification_redelivered_is_one_row(app: FastAPI) -> None:
    user = uuid.uuid4()
    for _ in range(2):  # every delivery twice
        await _deliver(app, listeners.on_user_signed_up, SignedUp(user), T0)
        await _deliver(app, listeners.on_user_signed_up, SignedUp(user), T0 + timedelta(hours=1))
        await _deliver(app, listeners.on_email_verified, Verified(user), T0 + timedelta(minutes=5))
    row = await _row(app, "SELECT * FROM analytics_signup WHERE user_id = :k", user)
    assert row == {
        "user_id": user,
        "signed_up_at": T0,
        "verified_at": T0 + timedelta(minutes=5),
    }


async def test_verification_delivered_before_the_signup_converges(app: FastAPI) -> None:
    user = uuid.uuid4()
    await _deliver(app, listeners.on_email_verified, Verified(user), T0 + timedelta(minutes=5))
    row = await _row(app, "SELECT * FROM analytics_signup WHERE user_id = :k", user)
    assert row is not None
    assert row["signed_up_at"] is None
    await _deliver(app, listeners.on_user_signed_up, SignedUp(user), T0)
    row = await _row(app, "SELECT * FROM analytics_signup WHERE user_id = :k", user)
    assert row == {"user_id": user, "signed_up_at": T0, "verified_at": T0 + timedelta(minutes=5)}


async def test_a_delivery_published_now_is_recorded_now(app: FastAPI) -> None:
    user = uuid.uuid4()
    await _deliver(app, listeners.on_user_signed_up, SignedUp(user), None)
    row = await _row(app, "SELECT * FROM analytics_signup WHERE user_id = :k", user)
    assert row is not None
    assert abs(row["signed_up_at"] - datetime.now(UTC)) < timedelta(minutes=1)


async def test_checkout_outcomes_are_idempotent_and_paid_is_final(app: FastAPI) -> None:
    order, user = uuid.uuid4(), uuid.uuid4()
    failed = OrderOutcome(order, user, 1999, "EUR")
    paid = OrderOutcome(order, user, 1999, "EUR")
    sql = "SELECT outcome, at, amount, currency FROM analytics_checkout WHERE order_id = :k"

    await _deliver(app, listeners.on_payment_failed, failed, T0)
    await _deliver(app, listeners.on_payment_failed, failed, T0 + timedelta(minutes=1))
    assert await _row(app, sql, order) == {
        "outcome": "failed",
        "at": T0,
        "amount": 1999,
        "currency": "EUR",
    }
    await _deliver(app, listeners.on_order_paid, paid, T0 + timedelta(minutes=3))
    await _deliver(app, listeners.on_order_paid, paid, T0 + timedelta(minutes=9))  # redelivery
    # A failure delivered late (out of order) does not undo the payment.
    await _deliver(app, listeners.on_payment_failed, failed, T0 + timedelta(minutes=10))
    assert await _row(app, sql, order) == {
        "outcome": "paid",
        "at": T0 + timedelta(minutes=3),
        "amount": 1999,
        "currency": "EUR",
    }
    async with app.state.db.session() as session:
        n = await session.scalar(
            text("SELECT count(*) FROM analytics_checkout WHERE order_id = :k"), {"k": order}
        )
    assert n == 1
