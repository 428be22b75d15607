"""Refunds: full or partial, never more than was captured, once per idempotency key."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.payments import metrics
from app.modules.payments import repository as repo
from app.modules.payments.interface import RefundIssued
from app.modules.payments.models import Refund
from app.modules.payments.providers import PaymentProvider, ProviderError
from app.modules.payments.schemas import RefundOut, RefundRequest
from app.modules.payments.service._common import (
    IdempotencyKeyReused,
    NotRefundable,
    ProviderFailed,
    ProviderTimedOut,
    RefundExceedsPayment,
    _emit,
)
from app.platform.config import Settings
from app.platform.errors import NotFound


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    refund: RefundOut
    replayed: bool


async def refund_order(
    session: AsyncSession,
    provider: PaymentProvider,
    settings: Settings,
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID | None,
    key: str,
    request: RefundRequest,
) -> RefundOutcome:
    """Refund ``request.amount`` (all that remains when omitted) of the order's payment.

    The order and payment rows stay locked FOR UPDATE from the check to the commit, so two
    refunds of one payment run one after the other and the second sees what the first took. The
    provider is called inside that lock with an idempotency key derived from ours: if our commit
    fails after the provider refunded, the client's retry gets the provider's first refund back
    instead of a second one.
    """
    locked = await repo.lock_order_and_payment(session, order_id, user_id=user_id)
    if locked is None:
        raise NotFound(f"No order {order_id}")
    order, payment = locked
    if payment is not None:
        previous = await repo.get_refund(session, payment.id, key)
        if previous is not None:
            if request.amount is not None and request.amount != previous.amount:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key already refunded another amount; use a new key"
                )
            return RefundOutcome(RefundOut.model_validate(previous), replayed=True)
    if payment is None or payment.status != "succeeded" or payment.provider_charge_id is None:
        raise NotRefundable(f"Order {order_id} is {order.status}: nothing was captured")
    remaining = payment.amount - payment.refunded_amount
    if remaining <= 0:
        raise NotRefundable(f"Order {order_id} is already fully refunded")
    amount = remaining if request.amount is None else request.amount
    if amount > remaining:
        raise RefundExceedsPayment(
            f"At most {remaining} {payment.currency} minor units remain refundable",
            refundable_amount=remaining,
            currency=payment.currency,
        )

    try:
        result = await asyncio.wait_for(
            provider.refund(
                charge_id=payment.provider_charge_id,
                amount=amount,
                currency=payment.currency,
                idempotency_key=f"refund:{payment.id}:{key}",
            ),
            timeout=settings.payments_provider_timeout_seconds,
        )
    except TimeoutError as exc:
        raise ProviderTimedOut(
            "The payment provider did not answer; nothing was recorded. Retry with the same key"
        ) from exc
    except ProviderError as exc:
        raise ProviderFailed(f"The payment provider refused the refund: {exc}") from exc

    refund = Refund(
        id=uuid.uuid4(),
        payment_id=payment.id,
        order_id=order.id,
        idempotency_key=key,
        amount=amount,
        currency=payment.currency,
        reason=request.reason,
        provider_refund_id=result.refund_id,
    )
    session.add(refund)
    payment.refunded_amount += amount
    order.refunded_amount += amount
    order.status = "refunded" if payment.refunded_amount == payment.amount else "partially_refunded"
    await _emit(
        session,
        RefundIssued(
            refund_id=refund.id,
            order_id=order.id,
            payment_id=payment.id,
            user_id=order.user_id,
            amount=amount,
            currency=payment.currency,
            remaining_amount=payment.amount - payment.refunded_amount,
        ),
    )
    await session.flush()
    await session.refresh(refund, ["created_at"])
    metrics.refunds_total.inc()
    return RefundOutcome(RefundOut.model_validate(refund), replayed=False)
