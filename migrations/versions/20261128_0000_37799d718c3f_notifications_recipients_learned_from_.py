"""notifications recipients learned from auth events

Revision ID: 37799d718c3f
Revises: eb648cd2052c
Create Date: 2026-11-28 00:00:33.815442+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "37799d718c3f"
down_revision: str | None = "eb648cd2052c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "notifications_recipient",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notifications_recipient")),
    )


def downgrade() -> None:

    op.drop_table("notifications_recipient")
