"""The payments module's queries; what each one loads eagerly is spelled out here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.modules.payments.models import (
    IdempotencyKey,
    Order,
    Payment,
    Product,
    Refund,
    WebhookEvent,
)
from app.platform.db.read_session import AsyncReadSession

Position = tuple[datetime, uuid.UUID]

# --- catalog ---------------------------------------------------------------------------------


async def get_product(session: AsyncReadSession, product_id: uuid.UUID) -> Product | None:
    return await session.get(Product, product_id)


async def products_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Product]:
    rows = await session.scalars(select(Product).where(Product.id.in_(ids)))
    return {p.id: p for p in rows}


async def list_products(
    session: AsyncReadSession,
    *,
    limit: int,
    after: Position | None,
    include_inactive: bool,
    currency: str | None,
    min_price: int | None,
    max_price: int | None,
) -> list[Product]:
    """Newest first, keyset-paginated on (created_at, id)."""
    stmt = select(Product).order_by(Product.created_at.desc(), Product.id.desc()).limit(limit)
    if after is not None:
        stmt = stmt.where(tuple_(Product.created_at, Product.id) < tuple_(*after))
    if not include_inactive:
        stmt = stmt.where(Product.active.is_(True))
    if currency is not None:
        stmt = stmt.where(Product.currency == currency)
    if min_price is not None:
        stmt = stmt.where(Product.price_amount >= min_price)
    if max_price is not None:
        stmt = stmt.where(Product.price_amount <= max_price)
    return list(await session.scalars(stmt))


async def search_products(
    session: AsyncReadSession, query: str, *, limit: int
) -> list[tuple[Product, float]]:
    """Active products matching ``query`` (web search syntax), best ``ts_rank_cd`` first."""
    tsquery = func.websearch_to_tsquery("english", query)
    rank = func.ts_rank_cd(Product.search_vector, tsquery).label("rank")
    stmt = (
        select(Product, rank)
        .where(Product.active.is_(True), Product.search_vector.bool_op("@@")(tsquery))
        .order_by(rank.desc(), Product.created_at.desc(), Product.id.desc())
        .limit(limit)
    )
    return [(product, float(rank)) for product, rank in (await session.execute(stmt)).all()]


# --- idempotency keys ------------------------------------------------------------------------


async def claim_idempotency_key(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    fingerprint: str,
    ttl: timedelta,
    lease: timedelta,
) -> bool:
    """Insert the key as in progress, leased; False when a row for it already exists."""
    stmt = (
        insert(IdempotencyKey)
        .values(
            user_id=user_id,
            key=key,
            fingerprint=fingerprint,
            state="in_progress",
            expires_at=func.now() + ttl,
            locked_until=func.now() + lease,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(IdempotencyKey.key)
    )
    return (await session.execute(stmt)).first() is not None


async def take_over_expired_key(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    fingerprint: str,
    ttl: timedelta,
    lease: timedelta,
) -> bool:
    """Reuse an expired key's row for a new request; atomic, so only one taker wins."""
    stmt = (
        update(IdempotencyKey)
        .where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at <= func.now(),
        )
        .values(
            fingerprint=fingerprint,
            state="in_progress",
            order_id=None,
            response_status=None,
            response_body=None,
            created_at=func.now(),
            expires_at=func.now() + ttl,
            locked_until=func.now() + lease,
        )
        .returning(IdempotencyKey.key)
    )
    return (await session.execute(stmt)).first() is not None


def _lease_lapsed() -> Any:
    return or_(IdempotencyKey.locked_until.is_(None), IdempotencyKey.locked_until <= func.now())


async def take_over_stalled_key(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    fingerprint: str,
    lease: timedelta,
) -> IdempotencyKey | None:
    """Lease an in-progress key whose request stopped (its lease lapsed); one taker wins."""
    stmt = (
        update(IdempotencyKey)
        .where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key == key,
            IdempotencyKey.state == "in_progress",
            IdempotencyKey.fingerprint == fingerprint,
            _lease_lapsed(),
        )
        .values(locked_until=func.now() + lease)
        .returning(IdempotencyKey)
    )
    return (await session.scalars(stmt)).first()


async def end_lease(session: AsyncSession, user_id: uuid.UUID, key: str) -> None:
    """The request gives the key up unfinished: the next one with it resumes at once."""
    await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key == key,
            IdempotencyKey.state == "in_progress",
        )
        .values(locked_until=func.now())
    )


async def lease_keys_of_order(
    session: AsyncSession, order_id: uuid.UUID, lease: timedelta
) -> list[IdempotencyKey] | None:
    """Lease the order's in-progress keys; None while a live request still holds one."""
    rows = list(
        await session.scalars(
            select(IdempotencyKey)
            .where(IdempotencyKey.order_id == order_id, IdempotencyKey.state == "in_progress")
            .with_for_update()
        )
    )
    now: datetime = (await session.execute(select(func.now()))).scalar_one()
    if any(row.locked_until is not None and row.locked_until > now for row in rows):
        return None
    for row in rows:
        row.locked_until = now + lease
    await session.flush()
    return rows


async def keys_of_order(session: AsyncSession, order_id: uuid.UUID) -> list[IdempotencyKey]:
    stmt = select(IdempotencyKey).where(
        IdempotencyKey.order_id == order_id, IdempotencyKey.state == "in_progress"
    )
    return list(await session.scalars(stmt))


async def release_stalled_keys_without_order(
    session: AsyncSession, *, older_than: timedelta
) -> int:
    """Forget keys whose request died before it created an order: nothing happened to them."""
    result = await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.state == "in_progress",
            IdempotencyKey.order_id.is_(None),
            IdempotencyKey.created_at <= func.now() - older_than,
            _lease_lapsed(),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_expired_keys(session: AsyncSession, *, batch: int) -> int:
    """Delete at most ``batch`` expired keys (oldest first, on the expiry index)."""
    doomed = (
        select(IdempotencyKey.user_id, IdempotencyKey.key)
        .where(IdempotencyKey.expires_at <= func.now())
        .order_by(IdempotencyKey.expires_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(IdempotencyKey).where(tuple_(IdempotencyKey.user_id, IdempotencyKey.key).in_(doomed))
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def get_idempotency_key(
    session: AsyncSession, user_id: uuid.UUID, key: str
) -> IdempotencyKey | None:
    stmt = select(IdempotencyKey).where(
        IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
    )
    return (await session.scalars(stmt)).first()


async def set_idempotency_order(
    session: AsyncSession, user_id: uuid.UUID, key: str, order_id: uuid.UUID
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(order_id=order_id)
    )


async def complete_idempotency_key(
    session: AsyncSession, user_id: uuid.UUID, key: str, *, status: int, body: bytes
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(state="completed", response_status=status, response_body=body, locked_until=None)
    )


async def release_idempotency_key(session: AsyncSession, user_id: uuid.UUID, key: str) -> None:
    """Forget an in-progress key whose request never started (bad input): it may be reused."""
    row = await get_idempotency_key(session, user_id, key)
    if row is not None and row.state == "in_progress":
        await session.delete(row)


# --- orders and payments ---------------------------------------------------------------------


async def list_orders(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, after: Position | None
) -> list[Order]:
    """One page of a user's orders, newest first, items loaded in one more query."""
    stmt = (
        select(Order)
        .where(Order.user_id == user_id)
        .options(selectinload(Order.items))
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(tuple_(Order.created_at, Order.id) < tuple_(*after))
    return list(await session.scalars(stmt))


async def get_order(
    session: AsyncSession, order_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> Order | None:
    """The order with its items; with ``user_id`` only if it is that user's."""
    stmt = select(Order).where(Order.id == order_id).options(selectinload(Order.items))
    if user_id is not None:
        stmt = stmt.where(Order.user_id == user_id)
    return (await session.scalars(stmt)).first()


async def lock_order_and_payment(
    session: AsyncSession, order_id: uuid.UUID, *, user_id: uuid.UUID | None
) -> tuple[Order, Payment | None] | None:
    """The order (only ``user_id``'s, unless None) and its payment, locked FOR UPDATE."""
    stmt = select(Order).where(Order.id == order_id)
    if user_id is not None:
        stmt = stmt.where(Order.user_id == user_id)
    order = (
        await session.scalars(stmt.with_for_update().execution_options(populate_existing=True))
    ).first()
    if order is None:
        return None
    payment = (
        await session.scalars(
            select(Payment)
            .where(Payment.order_id == order.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    return order, payment


async def payment_of_order(session: AsyncSession, order_id: uuid.UUID) -> Payment:
    return (await session.scalars(select(Payment).where(Payment.order_id == order_id))).one()


async def lock_payment_by_reference(
    session: AsyncSession, *, charge_id: str | None, payment_id: uuid.UUID | None
) -> tuple[Payment, Order] | None:
    """The payment a provider event names (charge id first, our reference second), locked."""
    conditions: list[Any] = []
    if charge_id:
        conditions.append(Payment.provider_charge_id == charge_id)
    if payment_id:
        conditions.append(Payment.id == payment_id)
    if not conditions:
        return None
    payment = (
        await session.scalars(
            select(Payment)
            .where(or_(*conditions))
            .order_by(Payment.created_at)
            .limit(1)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    if payment is None:
        return None
    order = (
        await session.scalars(
            select(Order)
            .where(Order.id == payment.order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return payment, order


async def get_refund(session: AsyncSession, payment_id: uuid.UUID, key: str) -> Refund | None:
    stmt = select(Refund).where(Refund.payment_id == payment_id, Refund.idempotency_key == key)
    return (await session.scalars(stmt)).first()


async def get_refund_by_id(session: AsyncSession, refund_id: uuid.UUID) -> Refund | None:
    return await session.get(Refund, refund_id)


async def pending_refund_amount(session: AsyncSession, payment_id: uuid.UUID) -> int:
    """What pending refunds of the payment hold back from what remains refundable."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment_id, Refund.status == "pending"
        )
    )
    return int(total or 0)


async def lock_refund(
    session: AsyncSession, refund_id: uuid.UUID
) -> tuple[Refund, Payment, Order] | None:
    """The refund with its payment and order, locked in the order other writers lock them."""
    refund = await session.get(Refund, refund_id)
    if refund is None:
        return None
    locked = await lock_order_and_payment(session, refund.order_id, user_id=None)
    assert locked is not None
    assert locked[1] is not None
    refund = (
        await session.scalars(
            select(Refund)
            .where(Refund.id == refund_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return refund, locked[1], locked[0]


async def pending_payment_ids(
    session: AsyncSession, *, older_than: timedelta, limit: int
) -> list[uuid.UUID]:
    stmt = (
        select(Payment.id)
        .where(Payment.status == "pending", Payment.created_at <= func.now() - older_than)
        .order_by(Payment.created_at)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def pending_refund_ids(
    session: AsyncSession, *, older_than: timedelta, limit: int
) -> list[uuid.UUID]:
    stmt = (
        select(Refund.id)
        .where(Refund.status == "pending", Refund.created_at <= func.now() - older_than)
        .order_by(Refund.created_at)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def oldest_pending_ages(session: AsyncSession) -> dict[str, float]:
    """Seconds since the oldest pending payment and refund were created (0: none pending)."""
    ages: dict[str, float] = {}
    for kind, model in (("payment", Payment), ("refund", Refund)):
        age = await session.scalar(
            select(
                func.coalesce(func.extract("epoch", func.now() - func.min(model.created_at)), 0)
            ).where(model.status == "pending")
        )
        ages[kind] = float(age or 0)
    return ages


# --- webhook inbox ---------------------------------------------------------------------------


async def record_webhook_event(
    session: AsyncSession, *, event_id: str, type_: str, payload: dict[str, Any]
) -> bool:
    """Put the event in the inbox; False when its id was seen before."""
    stmt = (
        insert(WebhookEvent)
        .values(provider_event_id=event_id, type=type_, payload=payload, outcome="received")
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(WebhookEvent.provider_event_id)
    )
    return (await session.execute(stmt)).first() is not None


async def set_webhook_outcome(session: AsyncSession, event_id: str, outcome: str) -> None:
    await session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.provider_event_id == event_id)
        .values(outcome=outcome)
    )
