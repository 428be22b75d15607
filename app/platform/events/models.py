"""The outbox tables: published events and their per-listener deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.db.base import Base

PENDING = "pending"
DONE = "done"
FAILED = "failed"


class OutboxEvent(Base):
    """One published event; written in the publisher's transaction."""

    __tablename__ = "platform_outbox_event"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[int]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    published_at: Mapped[datetime] = mapped_column(server_default=func.now())


class EventDelivery(Base):
    """The delivery of one event to one listener: its own state, attempts and errors."""

    __tablename__ = "platform_event_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "listener"),
        CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
        # The dispatcher's claim: pending work whose time has come, oldest first.
        Index(
            "ix_platform_event_delivery_claim",
            "available_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # Pruning done work and listing failed work, by when it finished.
        Index("ix_platform_event_delivery_finished", "status", "finished_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform_outbox_event.id", ondelete="CASCADE")
    )
    listener: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=PENDING)
    attempts: Mapped[int] = mapped_column(server_default="0")
    # When the next attempt may start; while an attempt runs, when its lease runs out.
    available_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
