"""Catalog use cases: admins create, change and deactivate products; everyone lists and searches."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.payments import repository
from app.modules.payments.models import Product
from app.modules.payments.schemas import (
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductUpdate,
    SearchHit,
    SearchResult,
)
from app.modules.payments.service.cache import CACHE, CHANNEL, ProductCache
from app.platform.db.read_session import AsyncReadSession
from app.platform.errors import NotFound
from app.platform.pagination import Keyset, decode_cursor, encode_cursor
from app.platform.ports import IdSource, random_ids


class CatalogRepository(Protocol):
    """The queries the catalog runs (``app.modules.payments.repository``; fakes in unit tests)."""

    async def get_product(
        self, session: AsyncReadSession, product_id: uuid.UUID
    ) -> Product | None: ...

    async def list_products(
        self,
        session: AsyncReadSession,
        *,
        limit: int,
        after: Keyset | None,
        include_inactive: bool,
        currency: str | None,
        min_price: int | None,
        max_price: int | None,
    ) -> list[Product]: ...

    async def search_products(
        self, session: AsyncReadSession, query: str, *, limit: int
    ) -> list[tuple[Product, float]]: ...


class CatalogReads:
    """The catalog's reads, on the read session (or the primary's: it satisfies the type)."""

    def __init__(
        self,
        session: AsyncReadSession,
        *,
        repo: CatalogRepository = repository,
        cache: ProductCache = CACHE,
        ids: IdSource = random_ids,
    ) -> None:
        self.session = session
        self.repo = repo
        self.cache = cache
        self.ids = ids

    async def get_product(
        self, product_id: uuid.UUID, *, include_inactive: bool, reader: uuid.UUID | None = None
    ) -> ProductOut:
        """One product; an active one is served from the product cache when it is current."""
        if not include_inactive and (cached := self.cache.get(product_id, reader)) is not None:
            return cached
        version = self.cache.version(product_id)
        product = await self.repo.get_product(self.session, product_id)
        if product is None or (not product.active and not include_inactive):
            raise NotFound(f"No product {product_id}")
        out = ProductOut.model_validate(product)
        if out.active:
            self.cache.put(out, version, reader)
        return out

    async def list_products(
        self,
        *,
        limit: int,
        cursor: str | None,
        include_inactive: bool,
        currency: str | None,
        min_price: int | None,
        max_price: int | None,
    ) -> ProductPage:
        rows = await self.repo.list_products(
            self.session,
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
        items = [ProductOut.model_validate(p) for p in page]
        return ProductPage(items=items, next_cursor=next_cursor)

    async def search_products(self, query: str, *, limit: int) -> SearchResult:
        """Ranked full-text search; ``search_id`` lets a later click be attributed to it."""
        rows = await self.repo.search_products(self.session, query, limit=limit)
        hits = [
            SearchHit(**ProductOut.model_validate(product).model_dump(), rank=rank)
            for product, rank in rows
        ]
        return SearchResult(search_id=self.ids(), query=query, items=hits)


class CatalogService(CatalogReads):
    """The catalog's changes, on the primary session."""

    session: AsyncSession

    def __init__(
        self,
        session: AsyncSession,
        *,
        repo: CatalogRepository = repository,
        cache: ProductCache = CACHE,
        ids: IdSource = random_ids,
    ) -> None:
        super().__init__(session, repo=repo, cache=cache, ids=ids)
        self.session = session

    async def create_product(self, data: ProductCreate) -> ProductOut:
        product = Product(**data.model_dump())
        self.session.add(product)
        await self.session.flush()
        await self.session.refresh(product, ["created_at", "updated_at"])
        return ProductOut.model_validate(product)

    async def _product(self, product_id: uuid.UUID) -> Product:
        product = await self.repo.get_product(self.session, product_id)
        if product is None:
            raise NotFound(f"No product {product_id}")
        return product

    async def update_product(self, product_id: uuid.UUID, data: ProductUpdate) -> ProductOut:
        product = await self._product(product_id)
        for field, value in data.model_dump(exclude_unset=True).items():
            if value is None:
                continue  # an explicit null changes nothing rather than breaking a NOT NULL column
            setattr(product, field, value)
        await self.session.flush()
        await self.session.refresh(product, ["updated_at"])
        await self._announce_change(product)
        return ProductOut.model_validate(product)

    async def deactivate_product(self, product_id: uuid.UUID) -> None:
        """Hide the product from the catalog and checkout; past orders keep their copy of it."""
        product = await self._product(product_id)
        product.active = False
        await self.session.flush()
        await self.session.refresh(product, ["updated_at"])
        await self._announce_change(product)

    async def _announce_change(self, product: Product) -> None:
        """Tell every process's product cache, when (and only if) this transaction commits."""
        self.cache.changed(product.id, product.updated_at)
        await self.session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": f"{product.id} {product.updated_at.isoformat()}"},
        )
