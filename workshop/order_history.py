"""Scenario E's page: a buyer's order history with items, products and payments, two ways.

``/workshop/order-history-lazy`` is the page as an ORM's defaults write it: the orders, then for
each order its items and its payment as lazy loads, and for each line its product (the identity
map spares a product already loaded): one statement per relationship per row, ~60 for 20
orders, which the platform's N+1 detector names. ``/workshop/order-history`` is the same page,
byte for byte, with explicit eager loading, the way ``payments.repository.list_orders`` loads
its items: the orders with their payments joined, all their items in one ``IN``, all their
products in another. Nothing here is in the deployable: only the workshop's server mounts it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload, lazyload, selectinload

from app.modules.payments.models import Order, OrderItem, Payment, Product
from app.platform.web.security import CurrentPrincipal
from app.platform.web.sessions import PrimarySession

router = APIRouter(prefix="/workshop")

Limit = Annotated[int, Query(ge=1, le=100)]


class ProductView(BaseModel):
    id: uuid.UUID
    name: str
    price_amount: int
    currency: str
    active: bool


class LineView(BaseModel):
    product_name: str
    unit_amount: int
    quantity: int
    line_amount: int
    product: ProductView | None  # today's product beside the line's price at purchase


class PaymentView(BaseModel):
    status: str
    amount: int
    refunded_amount: int
    failure_code: str | None


class OrderView(BaseModel):
    id: uuid.UUID
    status: str
    currency: str
    total_amount: int
    refunded_amount: int
    created_at: datetime
    items: list[LineView]
    payment: PaymentView | None


class HistoryPage(BaseModel):
    orders: list[OrderView]


def _orders(user_id: uuid.UUID, limit: int) -> Select[Order]:
    return (
        select(Order)
        .where(Order.user_id == user_id)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    )


def _view(
    order: Order,
    items: Sequence[OrderItem],
    payment: Payment | None,
    products: Mapping[uuid.UUID, Product | None],
) -> OrderView:
    lines = []
    for item in items:
        product = products.get(item.product_id)
        lines.append(
            LineView(
                product_name=item.product_name,
                unit_amount=item.unit_amount,
                quantity=item.quantity,
                line_amount=item.line_amount,
                product=ProductView.model_validate(product, from_attributes=True)
                if product is not None
                else None,
            )
        )
    return OrderView(
        id=order.id,
        status=order.status,
        currency=order.currency,
        total_amount=order.total_amount,
        refunded_amount=order.refunded_amount,
        created_at=order.created_at,
        items=lines,
        payment=PaymentView.model_validate(payment, from_attributes=True) if payment else None,
    )


@router.get("/order-history-lazy")
async def order_history_lazy(
    session: PrimarySession, principal: CurrentPrincipal, limit: Limit = 20
) -> HistoryPage:
    """The "before": every relationship loaded when the page first touches it."""
    stmt = _orders(principal.user_id, limit).options(lazyload(Order.items), lazyload(Order.payment))
    orders = list(await session.scalars(stmt))

    def render(sync: Session) -> list[OrderView]:
        # Attribute access in a sync session is what emits the lazy loads, one per touch.
        views = []
        for order in orders:
            items = order.items
            products = {item.product_id: sync.get(Product, item.product_id) for item in items}
            views.append(_view(order, items, order.payment, products))
        return views

    return HistoryPage(orders=await session.run_sync(render))


@router.get("/order-history")
async def order_history(
    session: PrimarySession, principal: CurrentPrincipal, limit: Limit = 20
) -> HistoryPage:
    """The "after": three statements whatever the page size."""
    stmt = _orders(principal.user_id, limit).options(
        joinedload(Order.payment), selectinload(Order.items)
    )
    orders = list((await session.scalars(stmt)).unique())
    wanted = {item.product_id for order in orders for item in order.items}
    products: dict[uuid.UUID, Product | None] = {}
    if wanted:
        found = await session.scalars(select(Product).where(Product.id.in_(wanted)))
        products = {product.id: product for product in found}
    return HistoryPage(
        orders=[_view(order, order.items, order.payment, products) for order in orders]
    )
