"""Catalog use cases: admins create, change and deactivate products; everyone lists and searches."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.payments import repository as repo
from app.modules.payments.models import Product
from app.modules.payments.schemas import (
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductUpdate,
    SearchHit,
    SearchResult,
)
from app.modules.payments.service.cache import CACHE, CHANNEL
from app.platform.db.read_session import AsyncReadSession
from app.platform.errors import NotFound
from app.platform.pagination import decode_cursor, encode_cursor


async def create_product(session: AsyncSession, data: ProductCreate) -> ProductOut:
    product = Product(**data.model_dump())
    session.add(product)
    await session.flush()
    await session.refresh(product, ["created_at", "updated_at"])
    return ProductOut.model_validate(product)


async def update_product(
    session: AsyncSession, product_id: uuid.UUID, data: ProductUpdate
) -> ProductOut:
    product = await repo.get_product(session, product_id)
    if product is None:
        raise NotFound(f"No product {product_id}")
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            continue  # an explicit null changes nothing rather than breaking a NOT NULL column
        setattr(product, field, value)
    await session.flush()
    await session.refresh(product, ["updated_at"])
    await _announce_change(session, product)
    return ProductOut.model_validate(product)


async def deactivate_product(session: AsyncSession, product_id: uuid.UUID) -> None:
    """Hide the product from the catalog and checkout; past orders keep their copy of it."""
    product = await repo.get_product(session, product_id)
    if product is None:
        raise NotFound(f"No product {product_id}")
    product.active = False
    await session.flush()
    await session.refresh(product, ["updated_at"])
    await _announce_change(session, product)


async def _announce_change(session: AsyncSession, product: Product) -> None:
    """Tell every process's product cache, when (and only if) this transaction commits."""
    CACHE.changed(product.id, product.updated_at)
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": f"{product.id} {product.updated_at.isoformat()}"},
    )


async def get_product(
    session: AsyncReadSession,
    product_id: uuid.UUID,
    *,
    include_inactive: bool,
    reader: uuid.UUID | None = None,
) -> ProductOut:
    """One product; an active one is served from the product cache when it is current."""
    if not include_inactive and (cached := CACHE.get(product_id, reader)) is not None:
        return cached
    version = CACHE.version(product_id)
    product = await repo.get_product(session, product_id)
    if product is None or (not product.active and not include_inactive):
        raise NotFound(f"No product {product_id}")
    out = ProductOut.model_validate(product)
    if out.active:
        CACHE.put(out, version, reader)
    return out


async def list_products(
    session: AsyncReadSession,
    *,
    limit: int,
    cursor: str | None,
    include_inactive: bool,
    currency: str | None,
    min_price: int | None,
    max_price: int | None,
) -> ProductPage:
    rows = await repo.list_products(
        session,
        limit=limit + 1,
        after=decode_cursor(cursor),
        include_inactive=include_inactive,
        currency=currency,
        min_price=min_price,
        max_price=max_price,
    )
    page = rows[:limit]
    next_cursor = (
        encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit and page else None
    )
    return ProductPage(items=[ProductOut.model_validate(p) for p in page], next_cursor=next_cursor)


async def search_products(session: AsyncReadSession, query: str, *, limit: int) -> SearchResult:
    """Ranked full-text search; ``search_id`` lets a later click be attributed to this search."""
    rows = await repo.search_products(session, query, limit=limit)
    hits = [
        SearchHit(**ProductOut.model_validate(product).model_dump(), rank=rank)
        for product, rank in rows
    ]
    return SearchResult(search_id=uuid.uuid4(), query=query, items=hits)
