"""Order reads: a user's own orders, newest first, with their items."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.payments import repository as repo
from app.modules.payments.schemas import OrderOut, OrderPage
from app.platform.errors import NotFound
from app.platform.pagination import decode_cursor, encode_cursor


async def list_orders(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, cursor: str | None
) -> OrderPage:
    """Two queries whatever the page size: the orders, then all their items."""
    rows = await repo.list_orders(session, user_id, limit=limit + 1, after=decode_cursor(cursor))
    page = rows[:limit]
    next_cursor = (
        encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit and page else None
    )
    return OrderPage(items=[OrderOut.model_validate(o) for o in page], next_cursor=next_cursor)


async def get_order(session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID) -> OrderOut:
    # Another user's order is indistinguishable from a missing one.
    order = await repo.get_order(session, order_id, user_id=user_id)
    if order is None:
        raise NotFound(f"No order {order_id}")
    return OrderOut.model_validate(order)
