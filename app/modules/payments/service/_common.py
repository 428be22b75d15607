"""What the payments use cases share: their ports, the event hook and the module's problems."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.modules.payments.interface import OrderPaid, PaymentFailed, PaymentsEvent
from app.modules.payments.models import Order, Payment
from app.modules.payments.providers import PaymentProvider
from app.platform.config import Settings
from app.platform.errors import AppError, BadRequest, Conflict, ValidationFailed
from app.platform.events import publish
from app.platform.ports import Clock, IdSource, random_ids, system_clock


@dataclass(frozen=True, slots=True)
class PaymentsPorts:
    """What payments reaches the outside world through, built once by the composition root."""

    provider: PaymentProvider
    clock: Clock = system_clock
    ids: IdSource = random_ids


async def _emit(session: AsyncSession, event: PaymentsEvent) -> None:
    """Publish ``event`` in the transaction of ``session``: it is delivered only if that commits.

    The one publish point of the module: the platform's transactional outbox.
    """
    await publish(session, event)


# The failure code of a payment the provider never saw (reconciliation found no charge).
NOT_CHARGED = "not_charged"


# --- problems --------------------------------------------------------------------------------


class IdempotencyKeyRequired(BadRequest):
    slug, title = "idempotency-key-required", "An Idempotency-Key header is required"


class IdempotencyKeyReused(ValidationFailed):
    slug, title = "idempotency-key-reused", "The Idempotency-Key was used for another request"


class IdempotencyKeyInProgress(Conflict):
    slug, title = "idempotency-key-in-progress", "A request with this Idempotency-Key is running"


class CheckoutInvalid(ValidationFailed):
    slug, title = "checkout-invalid", "The cart cannot be checked out"


class MixedCurrencies(ValidationFailed):
    slug, title = "mixed-currencies", "An order holds products of one currency only"


class PaymentDeclined(AppError):
    status, slug, title = 402, "payment-declined", "The payment was declined"


class ProviderFailed(AppError):
    status, slug, title = 502, "payment-provider-error", "The payment provider failed"


class ProviderTimedOut(AppError):
    status, slug, title = 504, "payment-provider-timeout", "The payment provider did not answer"


class RefundExceedsPayment(ValidationFailed):
    slug, title = "refund-exceeds-payment", "The refund is larger than what remains refundable"


class NotRefundable(Conflict):
    slug, title = "order-not-refundable", "This order cannot be refunded"


def order_paid_event(order: Order, payment: Payment) -> OrderPaid:
    return OrderPaid(
        order_id=order.id,
        payment_id=payment.id,
        user_id=order.user_id,
        amount=payment.amount,
        currency=payment.currency,
    )


def payment_failed_event(order: Order, payment: Payment, reason: str) -> PaymentFailed:
    return PaymentFailed(
        order_id=order.id,
        payment_id=payment.id,
        user_id=order.user_id,
        amount=payment.amount,
        currency=payment.currency,
        reason=reason,
    )


class TransactionalService:
    """A use case that runs its own short transactions (from ``sessions``) around calls to the
    provider, never holding one open across a call: checkout, refunds, reconciliation."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        ports: PaymentsPorts,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.ports = ports
