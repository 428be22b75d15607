"""The notifications listeners, subscribed in app/bootstrap.py."""

from __future__ import annotations

from app.modules.notifications.interface import NotificationRequested
from app.modules.notifications.senders import EmailSender
from app.modules.notifications.service import EmailNotSent, NotificationService
from app.platform.events import Delivery, Retry


class NotificationListeners:
    """Handlers bound to the process's email sender (chosen by APP_EMAIL_BACKEND)."""

    def __init__(self, sender: EmailSender) -> None:
        self.sender = sender

    async def on_notification_requested(
        self, event: NotificationRequested, delivery: Delivery
    ) -> None:
        service = NotificationService(delivery.session, sender=self.sender)
        try:
            await service.notify(
                user_id=event.user_id,
                template=event.template,
                context=event.context,
                email=event.email,
                # The delivery id is stable across attempts: a retry finds its notification.
                source_key=f"delivery:{delivery.id}",
            )
        except EmailNotSent as exc:
            # Keep the inbox entry and the failed attempt; retry the email with backoff.
            raise Retry(str(exc)) from exc
