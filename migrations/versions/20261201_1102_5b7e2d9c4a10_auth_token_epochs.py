"""auth: token epochs (access tokens revoked at once on admin and money routes)

One row per account whose tokens were ever revoked wholesale (role change, password reset,
deletion); no row is epoch 0. No foreign key to auth_user: the row must outlive a deleted
account so that account's tokens stay dead. Read by primary key only.

Revision ID: 5b7e2d9c4a10
Revises: 5d2f7a9c41e8
Create Date: 2026-12-01 11:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e2d9c4a10"
down_revision: str | None = "5d2f7a9c41e8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_token_epoch",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_auth_token_epoch")),
    )


def downgrade() -> None:
    op.drop_table("auth_token_epoch")
