"""baseline: the empty schema every later revision builds on

Modules add their tables in revisions of their own, named <module>_<entity>.

Revision ID: 835ba55baa2f
Revises:
Create Date: 2026-11-27 23:17:42.386357+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "835ba55baa2f"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
