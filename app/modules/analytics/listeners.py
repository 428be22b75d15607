"""Handlers for other modules' events: analytics keeps its own record of signups and checkouts.

Each handler's work runs in the delivery's session, so it commits with the delivery. They are
idempotent by natural key (user id, order id): a redelivery or an out-of-order delivery converges
to the same rows. The time recorded is when the fact happened, the event's publish time (set in
the publishing transaction), not when the delivery ran.
"""

from __future__ import annotations

from app.modules.analytics.service import FactsService
from app.modules.auth.interface import EmailVerified, UserSignedUp
from app.modules.payments.interface import OrderPaid, PaymentFailed
from app.platform.events import Delivery


async def on_user_signed_up(event: UserSignedUp, delivery: Delivery) -> None:
    await FactsService(delivery.session).record_signup_started(event.user_id, delivery.published_at)


async def on_email_verified(event: EmailVerified, delivery: Delivery) -> None:
    await FactsService(delivery.session).record_signup_verified(
        event.user_id, delivery.published_at
    )


async def on_order_paid(event: OrderPaid, delivery: Delivery) -> None:
    await FactsService(delivery.session).record_checkout(
        order_id=event.order_id,
        user_id=event.user_id,
        paid=True,
        amount=event.amount,
        currency=event.currency,
        at=delivery.published_at,
    )


async def on_payment_failed(event: PaymentFailed, delivery: Delivery) -> None:
    await FactsService(delivery.session).record_checkout(
        order_id=event.order_id,
        user_id=event.user_id,
        paid=False,
        amount=event.amount,
        currency=event.currency,
        at=delivery.published_at,
    )
