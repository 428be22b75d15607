"""SQLAlchemy models of the payments module: products, orders, payments, refunds, keys, inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.platform.db.base import Base, TimestampMixin

# The name weighs more than the description: ts_rank_cd ranks an 'A' hit above a 'B' hit.
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')"
)

ORDER_STATUSES = ("pending", "paid", "failed", "partially_refunded", "refunded")
PAYMENT_STATUSES = ("pending", "succeeded", "failed")
REFUND_STATUSES = ("pending", "succeeded", "failed")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Product(TimestampMixin, Base):
    __tablename__ = "payments_product"
    __table_args__ = (
        CheckConstraint("price_amount >= 0", name="price_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
        Index("ix_payments_product_search_vector", "search_vector", postgresql_using="gin"),
        Index("ix_payments_product_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    price_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    search_vector: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR_SQL, persisted=True), deferred=True
    )


class Order(TimestampMixin, Base):
    __tablename__ = "payments_order"
    __table_args__ = (
        CheckConstraint(_one_of("status", ORDER_STATUSES), name="status"),
        CheckConstraint("total_amount >= 0", name="total_not_negative"),
        CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= total_amount", name="refund_within_total"
        ),
        # GET /v1/orders: a user's orders, newest first, keyset-paginated.
        Index("ix_payments_order_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The auth module's user id; no foreign key across a module boundary.
    user_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(24))
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[int] = mapped_column(BigInteger)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))

    items: Mapped[list[OrderItem]] = relationship(
        lazy="raise", order_by="OrderItem.position", back_populates="order"
    )
    payment: Mapped[Payment | None] = relationship(lazy="raise", back_populates="order")


class OrderItem(Base):
    __tablename__ = "payments_order_item"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        UniqueConstraint("order_id", "position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments_order.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments_product.id"), index=True)
    # Copied at purchase time: a later rename or price change does not rewrite history.
    product_name: Mapped[str] = mapped_column(String(200))
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    line_amount: Mapped[int] = mapped_column(BigInteger)

    order: Mapped[Order] = relationship(lazy="raise", back_populates="items")


class Payment(TimestampMixin, Base):
    __tablename__ = "payments_payment"
    __table_args__ = (
        CheckConstraint(_one_of("status", PAYMENT_STATUSES), name="status"),
        CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= amount", name="refund_within_amount"
        ),
        # Reconciliation walks the pending payments, oldest first.
        Index(
            "ix_payments_payment_pending_created_at",
            "created_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payments_order.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    refunded_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    provider_charge_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    failure_code: Mapped[str | None] = mapped_column(String(64))

    order: Mapped[Order] = relationship(lazy="raise", back_populates="payment")


class Refund(Base):
    """A refund is recorded ``pending`` before the provider is asked, settled after it answers."""

    __tablename__ = "payments_refund"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(_one_of("status", REFUND_STATUSES), name="status"),
        # A client's retry of one refund finds the first one instead of refunding twice.
        UniqueConstraint("payment_id", "idempotency_key"),
        Index(
            "ix_payments_refund_pending_created_at",
            "created_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payments_payment.id", ondelete="CASCADE")
    )
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments_order.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'succeeded'"))
    provider_refund_id: Mapped[str | None] = mapped_column(String(100))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    settled_at: Mapped[datetime | None]


class IdempotencyKey(Base):
    """One checkout request's claim on an ``Idempotency-Key``, and its stored response."""

    __tablename__ = "payments_idempotency_key"
    __table_args__ = (
        CheckConstraint("state IN ('in_progress', 'completed')", name="state"),
        Index("ix_payments_idempotency_key_expires_at", "expires_at"),
        # Reconciliation finds the key of the order it settled.
        Index("ix_payments_idempotency_key_order_id", "order_id"),
    )

    # Scoped to the user: two users may pick the same key without seeing each other's result.
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[uuid.UUID | None]
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    # The lease of the request working on the key: once it lapses (the request died), the
    # next request with the key resumes the checkout from its recovery point.
    locked_until: Mapped[datetime | None]


class WebhookEvent(Base):
    """The inbox: every provider event applied once, keyed by the provider's event id."""

    __tablename__ = "payments_webhook_event"

    provider_event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
