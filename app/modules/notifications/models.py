"""The notifications tables: the inbox, every delivery attempt, and per-user preferences."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.db.base import Base


class Notification(Base):
    """One message to one user: shown in the in-app inbox, maybe also sent by email."""

    __tablename__ = "notifications_notification"
    __table_args__ = (
        # The inbox page: a user's notifications, newest first (scanned backwards).
        Index("ix_notifications_notification_inbox", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The auth module owns users: no foreign key across the boundary.
    user_id: Mapped[uuid.UUID]
    template: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # What asked for it (an event delivery id): a retried delivery finds it instead of a twin.
    source_key: Mapped[str | None] = mapped_column(Text, unique=True)
    read_at: Mapped[datetime | None]
    # The clock, not the transaction start: notifications made together keep their order.
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())


class DeliveryAttempt(Base):
    """One attempt to deliver a notification on a channel, whatever came of it."""

    __tablename__ = "notifications_delivery_attempt"
    __table_args__ = (CheckConstraint("status IN ('sent', 'failed', 'skipped')", name="status"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications_notification.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str | None] = mapped_column(Text)
    backend: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Recipient(Base):
    """Where to email a user: this module's own copy, learned from auth's events.

    Keeping it here (rather than asking auth) lets a receipt go out even while auth is slow or
    down, and keeps auth's tables out of this module's queries.
    """

    __tablename__ = "notifications_recipient"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Preference(Base):
    """Whether a user wants the optional emails of one category (absent: the default, yes)."""

    __tablename__ = "notifications_preference"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(Text, primary_key=True)
    email_enabled: Mapped[bool]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
