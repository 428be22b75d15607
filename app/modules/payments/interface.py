"""The public surface of the payments module: the only file other modules may import.

Events are published in the same transaction as the change they describe; listeners in other
modules (notifications: receipts and in-app notices) subscribe to them in ``app/bootstrap.py``.
Amounts are integers in minor units of ``currency`` (ISO 4217).
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from app.platform.events import Event


class OrderPaid(Event):
    """An order's payment was captured: the buyer gets a receipt and an in-app notification."""

    name: ClassVar[str] = "payments.order_paid"
    version: ClassVar[int] = 1

    order_id: uuid.UUID
    payment_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str


class PaymentFailed(Event):
    """A charge for an order was refused or failed: the buyer gets an in-app notice."""

    name: ClassVar[str] = "payments.payment_failed"
    version: ClassVar[int] = 1

    order_id: uuid.UUID
    payment_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    # "card_declined", "insufficient_funds", "provider_error", ... (the provider's failure code)
    reason: str


class RefundIssued(Event):
    """Money went back to the buyer, all of it or part of it."""

    name: ClassVar[str] = "payments.refund_issued"
    version: ClassVar[int] = 1

    refund_id: uuid.UUID
    order_id: uuid.UUID
    payment_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    # What is still refundable after this refund.
    remaining_amount: int


PaymentsEvent = OrderPaid | PaymentFailed | RefundIssued
EVENTS: tuple[type[PaymentsEvent], ...] = (OrderPaid, PaymentFailed, RefundIssued)

__all__ = ["EVENTS", "OrderPaid", "PaymentFailed", "PaymentsEvent", "RefundIssued"]
