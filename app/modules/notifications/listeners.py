"""The notifications listeners, subscribed in app/bootstrap.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.modules.auth.interface import PasswordResetRequested, UserSignedUp
from app.modules.notifications.interface import ContextValue, NotificationRequested
from app.modules.notifications.senders import EmailSender
from app.modules.notifications.service import EmailNotSent, NotificationService
from app.platform.events import Delivery, Retry


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


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
