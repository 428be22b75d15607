"""Refunds: full or partial, never more than was captured, once per idempotency key.

The same shape as checkout, with no transaction open while the provider thinks:

1. **Validate and record** the refund ``pending`` (order and payment locked ``FOR UPDATE`` only
   for this short transaction; pending refunds hold their amount back, so concurrent refunds never
   exceed what was captured); commit.
2. **Ask** the provider with the refund id as its idempotency key (and as our reference).
3. **Record** the outcome under the locks: succeeded (the amounts move, ``RefundIssued``), or
   failed when the provider refused (the amount is free again).

A failure between 1 and 3 (provider timeout, ``kill -9``, a lost connection) leaves the refund
pending; whichever comes first settles it, once: the client's retry with the same key (which
asks the provider again with the same refund id), the provider's ``charge.refunded`` webhook, or
the worker's reconciliation (``reconciliation.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.payments import metrics
from app.modules.payments import repository as repo
from app.modules.payments.interface import RefundIssued
from app.modules.payments.models import Refund
from app.modules.payments.providers import ProviderError
from app.modules.payments.schemas import RefundOut, RefundRequest
from app.modules.payments.service._common import (
    IdempotencyKeyReused,
    NotRefundable,
    ProviderFailed,
    ProviderTimedOut,
    RefundExceedsPayment,
    TransactionalService,
    _emit,
)
from app.platform.errors import NotFound
from app.platform.observability.logging import get_logger
from app.platform.ports import IdSource

log = get_logger("app.payments")


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    refund: RefundOut
    replayed: bool


@dataclass(frozen=True, slots=True)
class _Intent:
    """A pending refund to send to the provider."""

    refund_id: uuid.UUID
    charge_id: str
    amount: int
    currency: str


class RefundsService(TransactionalService):
    """Refunds: their own short transactions from ``sessions``, the provider from ``ports``."""

    async def refund_order(
        self,
        *,
        order_id: uuid.UUID,
        user_id: uuid.UUID | None,
        key: str,
        request: RefundRequest,
    ) -> RefundOutcome:
        """Refund ``request.amount`` (all that remains when omitted) of the order's payment."""
        async with self.sessions.begin() as session:
            intent = await _record_intent(
                session, order_id, user_id, key, request, new_id=self.ports.ids
            )
        if isinstance(intent, RefundOutcome):
            return intent
        provider_refund_id = await self._ask_provider(intent)
        async with self.sessions.begin() as session:
            refund, settled_now = await settle_refund(
                session, intent.refund_id, provider_refund_id=provider_refund_id
            )
            out = RefundOut.model_validate(refund)
        return RefundOutcome(out, replayed=not settled_now)

    async def _ask_provider(self, intent: _Intent) -> str:
        """The provider's refund id; a refusal is recorded, an unknown outcome stays pending."""
        try:
            result = await asyncio.wait_for(
                self.ports.provider.refund(
                    charge_id=intent.charge_id,
                    amount=intent.amount,
                    currency=intent.currency,
                    reference=str(intent.refund_id),
                    idempotency_key=str(intent.refund_id),
                ),
                timeout=self.settings.payments_provider_timeout_seconds,
            )
        except ProviderError as exc:
            async with self.sessions.begin() as session:
                await settle_refund(session, intent.refund_id, provider_refund_id=None)
            raise ProviderFailed(
                f"The payment provider refused the refund: {exc}", refund_id=intent.refund_id
            ) from exc
        except Exception as exc:
            # Whether it refunded is unknown: the refund stays pending for a retry to settle.
            log.warning("refund_unanswered", refund_id=str(intent.refund_id), error=repr(exc))
            raise ProviderTimedOut(
                "The payment provider did not answer; the refund is pending. Retry with the "
                "same key to settle it (nothing is refunded twice)",
                refund_id=intent.refund_id,
            ) from exc
        return result.refund_id


async def _record_intent(
    session: AsyncSession,
    order_id: uuid.UUID,
    user_id: uuid.UUID | None,
    key: str,
    request: RefundRequest,
    *,
    new_id: IdSource,
) -> _Intent | RefundOutcome:
    locked = await repo.lock_order_and_payment(session, order_id, user_id=user_id)
    if locked is None:
        raise NotFound(f"No order {order_id}")
    order, payment = locked
    previous = await repo.get_refund(session, payment.id, key) if payment is not None else None
    if previous is not None:
        if request.amount is not None and request.amount != previous.amount:
            raise IdempotencyKeyReused(
                "This Idempotency-Key already refunded another amount; use a new key"
            )
        if previous.status == "succeeded":
            return RefundOutcome(RefundOut.model_validate(previous), replayed=True)
    if payment is None or payment.status != "succeeded" or payment.provider_charge_id is None:
        raise NotRefundable(f"Order {order_id} is {order.status}: nothing was captured")
    if previous is not None and previous.status == "pending":
        # The first attempt stopped before it learned the outcome: ask again, same refund id.
        return _Intent(previous.id, payment.provider_charge_id, previous.amount, previous.currency)

    held = await repo.pending_refund_amount(session, payment.id)
    remaining = payment.amount - payment.refunded_amount - held
    if remaining <= 0:
        detail = "already fully refunded" if held == 0 else "being refunded in full"
        raise NotRefundable(f"Order {order_id} is {detail}")
    amount = remaining if request.amount is None else request.amount
    if amount > remaining:
        raise RefundExceedsPayment(
            f"At most {remaining} {payment.currency} minor units remain refundable",
            refundable_amount=remaining,
            currency=payment.currency,
        )
    if previous is not None:  # the provider refused it before: this retry is a new attempt
        previous.status, previous.failure_code, previous.settled_at = "pending", None, None
        previous.amount = amount
        refund = previous
    else:
        refund = Refund(
            id=new_id(),
            payment_id=payment.id,
            order_id=order.id,
            idempotency_key=key,
            amount=amount,
            currency=payment.currency,
            reason=request.reason,
            status="pending",
        )
        session.add(refund)
    await session.flush()
    return _Intent(refund.id, payment.provider_charge_id, amount, payment.currency)


async def settle_refund(
    session: AsyncSession,
    refund_id: uuid.UUID,
    *,
    provider_refund_id: str | None,
    failure_code: str = "provider_refused",
) -> tuple[Refund, bool]:
    """Record the provider's answer on a pending refund, once: (the refund, whether it changed).

    ``provider_refund_id`` None: the provider refused or never made it; the amount is free again.
    """
    locked = await repo.lock_refund(session, refund_id)
    assert locked is not None, "a refund is committed before the provider is asked"
    refund, payment, order = locked
    if refund.status == "succeeded" or (refund.status == "failed" and provider_refund_id is None):
        return refund, False
    # Marked failed (the provider had no record then) but the provider refunded after all: its
    # ledger is the truth, as long as ours can hold it.
    if refund.status == "failed" and payment.refunded_amount + refund.amount > payment.amount:
        log.error("refund_beyond_payment", refund_id=str(refund.id))
        return refund, False
    refund.settled_at = await session.scalar(func.now().select())
    if provider_refund_id is None:
        refund.status, refund.failure_code = "failed", failure_code
        await session.flush()
        return refund, True
    refund.status, refund.provider_refund_id = "succeeded", provider_refund_id
    payment.refunded_amount += refund.amount
    order.refunded_amount += refund.amount
    order.status = "refunded" if payment.refunded_amount == payment.amount else "partially_refunded"
    await _emit(
        session,
        RefundIssued(
            refund_id=refund.id,
            order_id=order.id,
            payment_id=payment.id,
            user_id=order.user_id,
            amount=refund.amount,
            currency=refund.currency,
            remaining_amount=payment.amount - payment.refunded_amount,
        ),
    )
    await session.flush()
    metrics.refunds_total.inc()
    return refund, True
