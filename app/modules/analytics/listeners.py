"""Handlers for other modules' events: analytics keeps its own record of signups and checkouts.

Each handler takes the event, a session on the primary (its work commits with the delivery) and
the delivery's id. They are idempotent by natural key (user id, order id), so a redelivery or an
out-of-order delivery converges to the same rows; the delivery id is therefore not stored.

The events are typed structurally (``Protocol``): analytics depends on the fields it reads, not on
auth's or payments' classes, which ``app/bootstrap.py`` binds these handlers to.
``occurred_at`` is when the fact happened (the outbox's publish time, which is in the publishing
transaction); without it the delivery's transaction time is used.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.analytics import service

DeliveryId = uuid.UUID | str | int


class UserSignedUpLike(Protocol):
    """auth.user_signed_up"""

    @property
    def user_id(self) -> uuid.UUID: ...


class EmailVerifiedLike(Protocol):
    """auth.email_verified"""

    @property
    def user_id(self) -> uuid.UUID: ...


class OrderOutcomeLike(Protocol):
    """payments.order_paid and payments.payment_failed"""

    @property
    def order_id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...


async def on_user_signed_up(
    event: UserSignedUpLike,
    session: AsyncSession,
    delivery_id: DeliveryId,
    *,
    occurred_at: datetime | None = None,
) -> None:
    await service.record_signup_started(session, event.user_id, occurred_at)


async def on_email_verified(
    event: EmailVerifiedLike,
    session: AsyncSession,
    delivery_id: DeliveryId,
    *,
    occurred_at: datetime | None = None,
) -> None:
    await service.record_signup_verified(session, event.user_id, occurred_at)


async def on_order_paid(
    event: OrderOutcomeLike,
    session: AsyncSession,
    delivery_id: DeliveryId,
    *,
    occurred_at: datetime | None = None,
) -> None:
    await service.record_checkout(
        session,
        order_id=event.order_id,
        user_id=event.user_id,
        paid=True,
        amount=event.amount,
        currency=event.currency,
        at=occurred_at,
    )


async def on_payment_failed(
    event: OrderOutcomeLike,
    session: AsyncSession,
    delivery_id: DeliveryId,
    *,
    occurred_at: datetime | None = None,
) -> None:
    await service.record_checkout(
        session,
        order_id=event.order_id,
        user_id=event.user_id,
        paid=False,
        amount=event.amount,
        currency=event.currency,
        at=occurred_at,
    )
