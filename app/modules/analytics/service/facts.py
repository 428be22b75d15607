"""Facts from other modules (signups, checkouts), recorded for the listeners."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.analytics import repository


async def record_signup_started(
    session: AsyncSession, user_id: uuid.UUID, at: datetime | None
) -> None:
    await repository.record_signup_started(session, user_id, at)


async def record_signup_verified(
    session: AsyncSession, user_id: uuid.UUID, at: datetime | None
) -> None:
    await repository.record_signup_verified(session, user_id, at)


async def record_checkout(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    paid: bool,
    amount: int,
    currency: str,
    at: datetime | None,
) -> None:
    await repository.record_checkout(
        session,
        order_id=order_id,
        user_id=user_id,
        outcome="paid" if paid else "failed",
        amount=amount,
        currency=currency,
        at=at,
    )
