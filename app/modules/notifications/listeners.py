"""The notifications listeners, subscribed in app/bootstrap.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.modules.auth.interface import PasswordResetRequested, UserSignedUp
from app.modules.notifications.interface import ContextValue, NotificationRequested
from app.modules.notifications.senders import EmailSender
from app.modules.notifications.service import EmailNotSent, NotificationService
from app.modules.payments.interface import OrderPaid, PaymentFailed, RefundIssued
from app.platform.events import Delivery, Retry
from app.platform.money import UnknownCurrency, format_money


class NotificationListeners:
    """Handlers bound to the process's email sender (chosen by APP_EMAIL_BACKEND)."""

    def __init__(self, sender: EmailSender) -> None:
        self.sender = sender

    async def _notify(
        self,
        delivery: Delivery,
        *,
        user_id: uuid.UUID,
        template: str,
        context: dict[str, ContextValue],
        email: str | None,
    ) -> None:
        service = NotificationService(delivery.session, sender=self.sender)
        try:
            await service.notify(
                user_id=user_id,
                template=template,
                context=context,
                email=email,
                # The delivery id is stable across attempts: a retry finds its notification.
                source_key=f"delivery:{delivery.id}",
            )
        except EmailNotSent as exc:
            # Keep the inbox entry and the failed attempt; retry the email with backoff.
            raise Retry(str(exc)) from exc

    async def on_notification_requested(
        self, event: NotificationRequested, delivery: Delivery
    ) -> None:
        await self._notify(
            delivery,
            user_id=event.user_id,
            template=event.template,
            context=event.context,
            email=event.email,
        )

    async def on_user_signed_up(self, event: UserSignedUp, delivery: Delivery) -> None:
        await NotificationService(delivery.session).remember_recipient(event.user_id, event.email)
        await self._notify(
            delivery,
            user_id=event.user_id,
            template="verify_email",
            context={
                "verification_url": event.verification_url,
                "expires_at": _when(event.expires_at),
            },
            email=event.email,
        )

    async def on_password_reset_requested(
        self, event: PasswordResetRequested, delivery: Delivery
    ) -> None:
        await self._notify(
            delivery,
            user_id=event.user_id,
            template="password_reset",
            context={"reset_url": event.reset_url, "expires_at": _when(event.expires_at)},
            email=event.email,
        )

    async def on_order_paid(self, event: OrderPaid, delivery: Delivery) -> None:
        """A receipt by email (when the address is known here) and in the inbox."""
        email = await NotificationService(delivery.session).recipient_email(event.user_id)
        await self._notify(
            delivery,
            user_id=event.user_id,
            template="order_receipt",
            context=_order_context(event.order_id, event.amount, event.currency),
            email=email,
        )

    async def on_payment_failed(self, event: PaymentFailed, delivery: Delivery) -> None:
        """An in-app notice only: the buyer saw the failure at checkout already."""
        await self._notify(
            delivery,
            user_id=event.user_id,
            template="payment_failed",
            context={
                **_order_context(event.order_id, event.amount, event.currency),
                "reason": event.reason.replace("_", " "),
            },
            email=None,
        )

    async def on_refund_issued(self, event: RefundIssued, delivery: Delivery) -> None:
        await self._notify(
            delivery,
            user_id=event.user_id,
            template="refund_issued",
            context=_order_context(event.order_id, event.amount, event.currency),
            email=None,
        )


def _amount(amount: int, currency: str) -> str:
    try:
        return format_money(amount, currency)
    except UnknownCurrency:
        # An order from before currencies were checked: still tell the buyer, never crash.
        return f"{amount} {currency} (minor units)"


def _order_context(order_id: uuid.UUID, amount: int, currency: str) -> dict[str, ContextValue]:
    return {
        "order_ref": str(order_id).split("-")[0].upper(),
        "amount": _amount(amount, currency),
    }


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
