"""The notifications use cases: notify a user, the inbox, preferences. Flushes, never commits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.notifications import repository
from app.modules.notifications.interface import ContextValue
from app.modules.notifications.metrics import EMAILS, NOTIFICATIONS_CREATED
from app.modules.notifications.models import Notification
from app.modules.notifications.rendering import CATALOG, OPTIONAL_CATEGORIES, RENDERER, Renderer
from app.modules.notifications.senders import Email, EmailSender
from app.platform.db.read_session import AsyncReadSession
from app.platform.errors import NotFound, ValidationFailed


class EmailNotSent(Exception):
    """The email could not be sent; the failed attempt is recorded in the session."""


@dataclass(frozen=True, slots=True)
class Notified:
    notification: Notification
    created: bool
    email: str  # "sent" | "skipped" | "already_sent" | "none"


@dataclass(frozen=True, slots=True)
class InboxPage:
    items: list[Notification]
    next_after: tuple[datetime, uuid.UUID] | None
    unread_count: int


class NotificationsRepository(Protocol):
    """The queries the use cases run (``app.modules.notifications.repository``; unit tests fake
    it in memory)."""

    async def add_notification(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        template: str,
        subject: str,
        body: str,
        source_key: str | None,
    ) -> tuple[Notification, bool]: ...

    async def email_already_sent(
        self, session: AsyncSession, notification_id: uuid.UUID
    ) -> bool: ...

    async def add_attempt(
        self,
        session: AsyncSession,
        *,
        notification_id: uuid.UUID,
        channel: str,
        recipient: str | None,
        backend: str,
        status: str,
        detail: str | None = None,
    ) -> None: ...

    async def page_for_user(
        self,
        session: AsyncReadSession,
        user_id: uuid.UUID,
        *,
        unread_only: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Notification]: ...

    async def count_unread(self, session: AsyncReadSession, user_id: uuid.UUID) -> int: ...

    async def mark_read(
        self, session: AsyncSession, notification_id: uuid.UUID, user_id: uuid.UUID
    ) -> Notification | None: ...

    async def mark_all_read(self, session: AsyncSession, user_id: uuid.UUID) -> int: ...

    async def preferences(
        self, session: AsyncReadSession, user_id: uuid.UUID
    ) -> dict[str, bool]: ...

    async def email_enabled(
        self, session: AsyncSession, user_id: uuid.UUID, category: str
    ) -> bool: ...

    async def set_preferences(
        self, session: AsyncSession, user_id: uuid.UUID, email: dict[str, bool]
    ) -> None: ...

    async def remember_recipient(
        self, session: AsyncSession, user_id: uuid.UUID, email: str
    ) -> None: ...

    async def recipient_email(
        self, session: AsyncReadSession, user_id: uuid.UUID
    ) -> str | None: ...


class NotificationReader:
    """The reads of the inbox and preferences: on the read session or the primary's."""

    def __init__(
        self, session: AsyncReadSession, *, repo: NotificationsRepository = repository
    ) -> None:
        self.session = session
        self.repo = repo

    async def recipient_email(self, user_id: uuid.UUID) -> str | None:
        return await self.repo.recipient_email(self.session, user_id)

    async def inbox(
        self,
        user_id: uuid.UUID,
        *,
        unread_only: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> InboxPage:
        rows = await self.repo.page_for_user(
            self.session, user_id, unread_only=unread_only, after=after, limit=limit + 1
        )
        items, more = rows[:limit], len(rows) > limit
        next_after = (items[-1].created_at, items[-1].id) if more and items else None
        unread = await self.repo.count_unread(self.session, user_id)
        return InboxPage(items=items, next_after=next_after, unread_count=unread)

    async def preferences(self, user_id: uuid.UUID) -> dict[str, bool]:
        stored = await self.repo.preferences(self.session, user_id)
        return {category: stored.get(category, True) for category in OPTIONAL_CATEGORIES}


class NotificationService(NotificationReader):
    """The inbox and email of one session (the request's, or a delivery's), with its sender:
    every use case, writes included, on the primary session only."""

    session: AsyncSession

    def __init__(
        self,
        session: AsyncSession,
        *,
        sender: EmailSender | None = None,
        renderer: Renderer = RENDERER,
        repo: NotificationsRepository = repository,
    ) -> None:
        super().__init__(session, repo=repo)
        self.session = session
        self.sender = sender
        self.renderer = renderer

    async def notify(
        self,
        *,
        user_id: uuid.UUID,
        template: str,
        context: Mapping[str, ContextValue],
        email: str | None,
        source_key: str | None = None,
    ) -> Notified:
        """Put a notification in the user's inbox and email it when an address is given.

        Idempotent per ``source_key``: a second call finds the first's notification and does not
        send an email that was already sent. Raises ``EmailNotSent`` after recording a failed
        send; the notification and the attempt stay in the session.
        """
        rendered = self.renderer.render(template, context)
        notification, created = await self.repo.add_notification(
            self.session,
            user_id=user_id,
            template=template,
            subject=rendered.subject,
            body=rendered.text,
            source_key=source_key,
        )
        if created:
            NOTIFICATIONS_CREATED.labels(template=template).inc()
        if email is None:
            return Notified(notification, created, "none")
        if not created and await self.repo.email_already_sent(self.session, notification.id):
            return Notified(notification, created, "already_sent")
        category = CATALOG[template].category
        if category is not None and not await self.repo.email_enabled(
            self.session, user_id, category
        ):
            await self._record(notification, email, "skipped", f"{category} turned off")
            EMAILS.labels(template=template, outcome="skipped").inc()
            return Notified(notification, created, "skipped")
        if self.sender is None:
            raise RuntimeError("NotificationService.notify needs an email sender to send email")
        message = Email(
            to=email,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=f"<{notification.id}@notifications.invalid>",
        )
        try:
            await self.sender.send(message)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"[:2000]
            await self._record(notification, email, "failed", detail)
            EMAILS.labels(template=template, outcome="failed").inc()
            raise EmailNotSent(detail) from exc
        await self._record(notification, email, "sent", None)
        EMAILS.labels(template=template, outcome="sent").inc()
        return Notified(notification, created, "sent")

    async def _record(
        self, notification: Notification, email: str, status: str, detail: str | None
    ) -> None:
        await self.repo.add_attempt(
            self.session,
            notification_id=notification.id,
            channel="email",
            recipient=email,
            backend=self.sender.backend if self.sender else "none",
            status=status,
            detail=detail,
        )

    async def remember_recipient(self, user_id: uuid.UUID, email: str) -> None:
        await self.repo.remember_recipient(self.session, user_id, email)

    async def mark_read(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> Notification:
        notification = await self.repo.mark_read(self.session, notification_id, user_id)
        if notification is None:
            # Someone else's notification is indistinguishable from a missing one.
            raise NotFound("No such notification")
        return notification

    async def mark_all_read(self, user_id: uuid.UUID) -> int:
        return await self.repo.mark_all_read(self.session, user_id)

    async def set_preferences(self, user_id: uuid.UUID, email: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(email) - set(OPTIONAL_CATEGORIES))
        if unknown:
            raise ValidationFailed(
                f"Unknown email categories: {', '.join(unknown)}",
                errors=[
                    {
                        "loc": ["body", "email", c],
                        "field": f"email.{c}",
                        "msg": "not an optional email category",
                        "type": "unknown_category",
                    }
                    for c in unknown
                ],
            )
        await self.repo.set_preferences(self.session, user_id, email)
        return {**(await self.preferences(user_id)), **email}
