"""payments recovery points: refunds recorded pending before the provider is asked, a lease on
checkout keys, indexes for reconciliation

Revision ID: c5e1f0a7d3b2
Revises: 5b7e2d9c4a10
Create Date: 2026-12-01 11:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5e1f0a7d3b2"
down_revision: str | None = "5b7e2d9c4a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Refunds recorded before this revision were all settled with the provider.
    op.add_column(
        "payments_refund",
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'succeeded'"), nullable=False
        ),
    )
    op.add_column("payments_refund", sa.Column("failure_code", sa.String(length=64), nullable=True))
    op.add_column(
        "payments_refund", sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.alter_column(
        "payments_refund", "provider_refund_id", existing_type=sa.String(length=100), nullable=True
    )
    op.create_check_constraint(
        op.f("ck_payments_refund_status"),
        "payments_refund",
        "status IN ('pending', 'succeeded', 'failed')",
    )
    op.create_index(
        "ix_payments_refund_pending_created_at",
        "payments_refund",
        ["created_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_payments_payment_pending_created_at",
        "payments_payment",
        ["created_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.add_column(
        "payments_idempotency_key",
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_payments_idempotency_key_order_id", "payments_idempotency_key", ["order_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_payments_idempotency_key_order_id", table_name="payments_idempotency_key")
    op.drop_column("payments_idempotency_key", "locked_until")
    op.drop_index("ix_payments_payment_pending_created_at", table_name="payments_payment")
    op.drop_index("ix_payments_refund_pending_created_at", table_name="payments_refund")
    op.drop_constraint(op.f("ck_payments_refund_status"), "payments_refund", type_="check")
    # Refunds never settled had no provider id; they gave nothing back, so they go.
    op.execute("DELETE FROM payments_refund WHERE provider_refund_id IS NULL")
    op.alter_column(
        "payments_refund", "provider_refund_id", existing_type=sa.String(length=100), nullable=False
    )
    op.drop_column("payments_refund", "settled_at")
    op.drop_column("payments_refund", "failure_code")
    op.drop_column("payments_refund", "status")
