"""The analytics tables: ingested product events, and what analytics learns from other modules.

The index choices are explained in the migration that creates them
(``migrations/versions/*_analytics_tables.py``); the model and the migration must agree.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.db.base import Base

EVENT_TYPES = ("page_view", "search", "search_click", "checkout_started", "custom")
CHECKOUT_OUTCOMES = ("paid", "failed")


class AnalyticsEvent(Base):
    """One product event as a client reported it. Append-only; never updated."""

    __tablename__ = "analytics_event"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    user_id: Mapped[uuid.UUID | None]
    anonymous_id: Mapped[str | None] = mapped_column(String(128))
    # custom events: the event's name
    name: Mapped[str | None] = mapped_column(String(128))
    # page_view
    path: Mapped[str | None] = mapped_column(Text)
    # search (query is normalised: case-folded, whitespace collapsed) and search_click
    search_id: Mapped[uuid.UUID | None]
    query: Mapped[str | None] = mapped_column(Text)
    result_count: Mapped[int | None] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID | None]
    position: Mapped[int | None] = mapped_column(Integer)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        CheckConstraint(
            "type IN ('page_view', 'search', 'search_click', 'checkout_started', 'custom')",
            name="type_known",
        ),
        CheckConstraint("user_id IS NOT NULL OR anonymous_id IS NOT NULL", name="has_actor"),
        # Append order follows time, so a BRIN stays tiny and precise: any time-window scan.
        Index(
            "ix_analytics_event_occurred_at_brin",
            "occurred_at",
            postgresql_using="brin",
        ),
        # Reports on searches: count, top terms, and the searches to look up clicks for.
        Index(
            "ix_analytics_event_search_occurred_at",
            "occurred_at",
            postgresql_include=["search_id", "query", "result_count"],
            postgresql_where=text("type = 'search'"),
        ),
        # Reports on clicks by time: most clicked products.
        Index(
            "ix_analytics_event_click_occurred_at",
            "occurred_at",
            postgresql_include=["product_id", "position"],
            postgresql_where=text("type = 'search_click'"),
        ),
        # "Was this search clicked?": the semi-join from a search to its clicks.
        Index(
            "ix_analytics_event_click_search_id",
            "search_id",
            postgresql_where=text("type = 'search_click'"),
        ),
    )


class AnalyticsSignup(Base):
    """A sign-up as analytics saw it (from auth's events): when started, when verified."""

    __tablename__ = "analytics_signup"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Null while only the verification has been seen (deliveries may arrive out of order).
    signed_up_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "ix_analytics_signup_signed_up_at",
            "signed_up_at",
            postgresql_include=["verified_at"],
        ),
    )


class AnalyticsCheckout(Base):
    """A checkout's final outcome as analytics saw it (from payments' events), one row per order."""

    __tablename__ = "analytics_checkout"

    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID]
    outcome: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # When the outcome happened: the payment for 'paid', the first failure for 'failed'.
    at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("outcome IN ('paid', 'failed')", name="outcome_known"),
        Index("ix_analytics_checkout_at", "at", postgresql_include=["outcome"]),
    )


class AnalyticsBatchKey(Base):
    """An event batch's ``Idempotency-Key``: stored with the batch's events, in one transaction.

    Scoped to the caller (``user:<id>`` or ``anon:<anonymous_id>``), so two clients choosing the
    same key never see each other's batch. ``expires_at`` bounds how long a retry is recognised
    and orders the purge of expired keys.
    """

    __tablename__ = "analytics_batch_key"

    scope: Mapped[str] = mapped_column(String(160), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    accepted: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]

    __table_args__ = (Index("ix_analytics_batch_key_expires_at", "expires_at"),)
