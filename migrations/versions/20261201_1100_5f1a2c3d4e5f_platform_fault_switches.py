"""platform_fault: the runtime fault switches (development, test and workshop only)

One row per fault that is switched on, with the ratio of calls (or keys) it hits. Every app and
worker process reads the table every APP_FAULTS_REFRESH_SECONDS (app/platform/faults.py); it stays
empty in production, where the CLI refuses to write it.

Revision ID: 5f1a2c3d4e5f
Revises: 88bc5b956222
Create Date: 2026-12-01 11:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5f1a2c3d4e5f"
down_revision: str | None = "88bc5b956222"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "platform_fault",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ratio", sa.Float(), nullable=False),
        sa.Column(
            "switched_on_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_platform_fault")),
        sa.CheckConstraint("ratio > 0 AND ratio <= 1", name=op.f("ck_platform_fault_ratio")),
    )


def downgrade() -> None:
    op.drop_table("platform_fault")
