"""payments tables: catalog (with a full-text search vector), orders, payments, refunds,
idempotency keys and the provider webhook inbox

Revision ID: eb648cd2052c
Revises: 66faa31b8ef5
Create Date: 2026-11-27 23:25:26.751962+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "eb648cd2052c"
down_revision: str | None = "66faa31b8ef5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payments_idempotency_key",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('in_progress', 'completed')", name=op.f("ck_payments_idempotency_key_state")
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_payments_idempotency_key")),
    )
    op.create_index(
        "ix_payments_idempotency_key_expires_at",
        "payments_idempotency_key",
        ["expires_at"],
        unique=False,
    )
    op.create_table(
        "payments_order",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'failed', 'partially_refunded', 'refunded')",
            name=op.f("ck_payments_order_status"),
        ),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= total_amount",
            name=op.f("ck_payments_order_refund_within_total"),
        ),
        sa.CheckConstraint("total_amount >= 0", name=op.f("ck_payments_order_total_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_order")),
    )
    op.create_index(
        "ix_payments_order_user_id_created_at_id",
        "payments_order",
        ["user_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "payments_product",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("price_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A') || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "currency ~ '^[A-Z]{3}$'", name=op.f("ck_payments_product_currency_iso")
        ),
        sa.CheckConstraint(
            "price_amount >= 0", name=op.f("ck_payments_product_price_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_product")),
    )
    op.create_index(
        "ix_payments_product_created_at_id", "payments_product", ["created_at", "id"], unique=False
    )
    op.create_index(
        "ix_payments_product_search_vector",
        "payments_product",
        ["search_vector"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "payments_webhook_event",
        sa.Column("provider_event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("provider_event_id", name=op.f("pk_payments_webhook_event")),
    )
    op.create_table(
        "payments_order_item",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("product_name", sa.String(length=200), nullable=False),
        sa.Column("unit_amount", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("line_amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_payments_order_item_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payments_order.id"],
            name=op.f("fk_payments_order_item_order_id_payments_order"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["payments_product.id"],
            name=op.f("fk_payments_order_item_product_id_payments_product"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_order_item")),
        sa.UniqueConstraint(
            "order_id", "position", name=op.f("uq_payments_order_item_order_id_position")
        ),
    )
    op.create_index(
        op.f("ix_payments_order_item_product_id"),
        "payments_order_item",
        ["product_id"],
        unique=False,
    )
    op.create_table(
        "payments_payment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("provider_charge_id", sa.String(length=100), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name=op.f("ck_payments_payment_status")
        ),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= amount",
            name=op.f("ck_payments_payment_refund_within_amount"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payments_order.id"],
            name=op.f("fk_payments_payment_order_id_payments_order"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_payment")),
        sa.UniqueConstraint("order_id", name=op.f("uq_payments_payment_order_id")),
        sa.UniqueConstraint(
            "provider_charge_id", name=op.f("uq_payments_payment_provider_charge_id")
        ),
    )
    op.create_table(
        "payments_refund",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("provider_refund_id", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_refund_amount_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payments_order.id"],
            name=op.f("fk_payments_refund_order_id_payments_order"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments_payment.id"],
            name=op.f("fk_payments_refund_payment_id_payments_payment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments_refund")),
        sa.UniqueConstraint(
            "payment_id",
            "idempotency_key",
            name=op.f("uq_payments_refund_payment_id_idempotency_key"),
        ),
    )


def downgrade() -> None:
    op.drop_table("payments_refund")
    op.drop_table("payments_payment")
    op.drop_index(op.f("ix_payments_order_item_product_id"), table_name="payments_order_item")
    op.drop_table("payments_order_item")
    op.drop_table("payments_webhook_event")
    op.drop_index(
        "ix_payments_product_search_vector", table_name="payments_product", postgresql_using="gin"
    )
    op.drop_index("ix_payments_product_created_at_id", table_name="payments_product")
    op.drop_table("payments_product")
    op.drop_index("ix_payments_order_user_id_created_at_id", table_name="payments_order")
    op.drop_table("payments_order")
    op.drop_index("ix_payments_idempotency_key_expires_at", table_name="payments_idempotency_key")
    op.drop_table("payments_idempotency_key")
