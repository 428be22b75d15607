"""analytics tables: analytics_event, analytics_signup, analytics_checkout

Indexes, and the report query each one serves (app/modules/analytics/repository.py):

analytics_event is append-only and large (millions of rows), so every index must earn its write
cost. The reports always filter on ONE constant event type and a time window, so partial indexes
(one per type a report reads) beat a compound (type, occurred_at) btree: each holds only its own
type's rows (searches and clicks are a fraction of all events) and needs no type column.

- ix_analytics_event_search_occurred_at: btree (occurred_at) INCLUDE (search_id, query,
  result_count) WHERE type = 'search'. The funnel's searches per interval and the top search
  terms read only these columns, so they run as index-only scans of the window.
- ix_analytics_event_click_occurred_at: btree (occurred_at) INCLUDE (product_id, position) WHERE
  type = 'search_click'. Most clicked products: index-only scan of the window's clicks.
- ix_analytics_event_click_search_id: btree (search_id) WHERE type = 'search_click'. The
  funnel's "was this search clicked" semi-join probes it per search.
- ix_analytics_event_occurred_at_brin: BRIN (occurred_at). Rows arrive roughly in time order, so
  a BRIN of a few pages bounds any other time-window scan (ad-hoc queries, retention deletes) at
  almost no write cost, where a full btree would cost as much as the table's other indexes.

analytics_signup and analytics_checkout hold one row per user / order and are read by time:
- ix_analytics_signup_signed_up_at: btree (signed_up_at) INCLUDE (verified_at): the signup
  cohort per interval and how many of it verified, index-only.
- ix_analytics_checkout_at: btree (at) INCLUDE (outcome): paid and failed per interval,
  index-only.

Revision ID: 88bc5b956222
Revises: 37799d718c3f
Create Date: 2026-11-28 00:01:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "88bc5b956222"
down_revision: str | None = "37799d718c3f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("anonymous_id", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("search_id", sa.Uuid(), nullable=True),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("result_count", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "type IN ('page_view', 'search', 'search_click', 'checkout_started', 'custom')",
            name=op.f("ck_analytics_event_type_known"),
        ),
        sa.CheckConstraint(
            "user_id IS NOT NULL OR anonymous_id IS NOT NULL",
            name=op.f("ck_analytics_event_has_actor"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_event")),
    )
    op.create_index(
        "ix_analytics_event_occurred_at_brin",
        "analytics_event",
        ["occurred_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_index(
        "ix_analytics_event_search_occurred_at",
        "analytics_event",
        ["occurred_at"],
        unique=False,
        postgresql_include=["search_id", "query", "result_count"],
        postgresql_where=sa.text("type = 'search'"),
    )
    op.create_index(
        "ix_analytics_event_click_occurred_at",
        "analytics_event",
        ["occurred_at"],
        unique=False,
        postgresql_include=["product_id", "position"],
        postgresql_where=sa.text("type = 'search_click'"),
    )
    op.create_index(
        "ix_analytics_event_click_search_id",
        "analytics_event",
        ["search_id"],
        unique=False,
        postgresql_where=sa.text("type = 'search_click'"),
    )

    op.create_table(
        "analytics_signup",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("signed_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_analytics_signup")),
    )
    op.create_index(
        "ix_analytics_signup_signed_up_at",
        "analytics_signup",
        ["signed_up_at"],
        unique=False,
        postgresql_include=["verified_at"],
    )

    op.create_table(
        "analytics_checkout",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('paid', 'failed')", name=op.f("ck_analytics_checkout_outcome_known")
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_analytics_checkout")),
    )
    op.create_index(
        "ix_analytics_checkout_at",
        "analytics_checkout",
        ["at"],
        unique=False,
        postgresql_include=["outcome"],
    )


def downgrade() -> None:
    op.drop_index("ix_analytics_checkout_at", table_name="analytics_checkout")
    op.drop_table("analytics_checkout")
    op.drop_index("ix_analytics_signup_signed_up_at", table_name="analytics_signup")
    op.drop_table("analytics_signup")
    op.drop_index("ix_analytics_event_click_search_id", table_name="analytics_event")
    op.drop_index("ix_analytics_event_click_occurred_at", table_name="analytics_event")
    op.drop_index("ix_analytics_event_search_occurred_at", table_name="analytics_event")
    op.drop_index("ix_analytics_event_occurred_at_brin", table_name="analytics_event")
    op.drop_table("analytics_event")
