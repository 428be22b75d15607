"""analytics batch idempotency keys: analytics_batch_key

One row per (caller scope, Idempotency-Key) of an ingested event batch, written in the batch's own
transaction, so a retried batch is recognised and stored once. ix_analytics_batch_key_expires_at
lets the purge of expired keys take them oldest first in bounded batches.

Revision ID: 5d2f7a9c41e8
Revises: 5f1a2c3d4e5f
Create Date: 2026-12-01 11:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d2f7a9c41e8"
down_revision: str | None = "5f1a2c3d4e5f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_batch_key",
        sa.Column("scope", sa.String(length=160), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_analytics_batch_key")),
    )
    op.create_index(
        "ix_analytics_batch_key_expires_at", "analytics_batch_key", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_analytics_batch_key_expires_at", table_name="analytics_batch_key")
    op.drop_table("analytics_batch_key")
