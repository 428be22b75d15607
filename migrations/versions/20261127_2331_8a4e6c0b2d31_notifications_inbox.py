"""notifications: the inbox, delivery attempts and per-user preferences

Revision ID: 8a4e6c0b2d31
Revises: 3f1c2a7d9b10
Create Date: 2026-11-27 23:31:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8a4e6c0b2d31"
down_revision: str | None = "3f1c2a7d9b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifications_notification",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications_notification")),
        sa.UniqueConstraint("source_key", name=op.f("uq_notifications_notification_source_key")),
    )
    op.create_index(
        "ix_notifications_notification_inbox",
        "notifications_notification",
        ["user_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "notifications_delivery_attempt",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("backend", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "attempted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('sent', 'failed', 'skipped')",
            name=op.f("ck_notifications_delivery_attempt_status"),
        ),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications_notification.id"],
            name=op.f(
                "fk_notifications_delivery_attempt_notification_id_notifications_notification"
            ),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications_delivery_attempt")),
    )
    op.create_index(
        op.f("ix_notifications_delivery_attempt_notification_id"),
        "notifications_delivery_attempt",
        ["notification_id"],
        unique=False,
    )
    op.create_table(
        "notifications_preference",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("email_enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", "category", name=op.f("pk_notifications_preference")),
    )


def downgrade() -> None:
    op.drop_table("notifications_preference")
    op.drop_index(
        op.f("ix_notifications_delivery_attempt_notification_id"),
        table_name="notifications_delivery_attempt",
    )
    op.drop_table("notifications_delivery_attempt")
    op.drop_index("ix_notifications_notification_inbox", table_name="notifications_notification")
    op.drop_table("notifications_notification")
