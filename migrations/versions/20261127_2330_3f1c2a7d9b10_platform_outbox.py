"""platform outbox: published events and their per-listener deliveries

Revision ID: 3f1c2a7d9b10
Revises: 835ba55baa2f
Create Date: 2026-11-27 23:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3f1c2a7d9b10"
down_revision: str | None = "835ba55baa2f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "platform_outbox_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "published_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_outbox_event")),
    )
    op.create_table(
        "platform_event_delivery",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("listener", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "available_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed')",
            name=op.f("ck_platform_event_delivery_status"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["platform_outbox_event.id"],
            name=op.f("fk_platform_event_delivery_event_id_platform_outbox_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_event_delivery")),
        sa.UniqueConstraint(
            "event_id", "listener", name=op.f("uq_platform_event_delivery_event_id_listener")
        ),
    )
    op.create_index(
        "ix_platform_event_delivery_claim",
        "platform_event_delivery",
        ["available_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_platform_event_delivery_finished",
        "platform_event_delivery",
        ["status", "finished_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_platform_event_delivery_finished", table_name="platform_event_delivery")
    op.drop_index("ix_platform_event_delivery_claim", table_name="platform_event_delivery")
    op.drop_table("platform_event_delivery")
    op.drop_table("platform_outbox_event")
