"""Order reads: a user's own orders, newest first, with their items."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.payments import repository
from app.modules.payments.models import Order
from app.modules.payments.schemas import OrderOut, OrderPage
from app.platform.errors import NotFound
from app.platform.pagination import Keyset, decode_cursor, encode_cursor


class OrdersRepository(Protocol):
    """The order reads (``app.modules.payments.repository``; fakes in unit tests)."""

    async def list_orders(
        self, session: AsyncSession, user_id: uuid.UUID, *, limit: int, after: Keyset | None
    ) -> list[Order]: ...

    async def get_order(
        self, session: AsyncSession, order_id: uuid.UUID, *, user_id: uuid.UUID | None = None
    ) -> Order | None: ...


class OrdersService:
    """A buyer's orders, on the session it is given."""

    def __init__(self, session: AsyncSession, *, repo: OrdersRepository = repository) -> None:
        self.session = session
        self.repo = repo

    async def list_orders(self, user_id: uuid.UUID, *, limit: int, cursor: str | None) -> OrderPage:
        """Two queries whatever the page size: the orders, then all their items."""
        rows = await self.repo.list_orders(
            self.session, user_id, limit=limit + 1, after=decode_cursor(cursor)
        )
        page = rows[:limit]
        next_cursor = (
            encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit and page else None
        )
        return OrderPage(items=[OrderOut.model_validate(o) for o in page], next_cursor=next_cursor)

    async def get_order(self, user_id: uuid.UUID, order_id: uuid.UUID) -> OrderOut:
        # Another user's order is indistinguishable from a missing one.
        order = await self.repo.get_order(self.session, order_id, user_id=user_id)
        if order is None:
            raise NotFound(f"No order {order_id}")
        return OrderOut.model_validate(order)
