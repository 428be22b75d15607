"""Facts from other modules (signups, checkouts), recorded for the listeners."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.analytics import repository


class FactsRepository(Protocol):
    """The facts' upserts (``app.modules.analytics.repository``; fakes in unit tests)."""

    async def record_signup_started(
        self, session: AsyncSession, user_id: uuid.UUID, at: datetime | None
    ) -> None: ...

    async def record_signup_verified(
        self, session: AsyncSession, user_id: uuid.UUID, at: datetime | None
    ) -> None: ...

    async def record_checkout(
        self,
        session: AsyncSession,
        *,
        order_id: uuid.UUID,
        user_id: uuid.UUID,
        outcome: str,
        amount: int,
        currency: str,
        at: datetime | None,
    ) -> None: ...


class FactsService:
    """Other modules' facts, in a delivery's session (it commits with the delivery)."""

    def __init__(self, session: AsyncSession, *, repo: FactsRepository = repository) -> None:
        self.session = session
        self.repo = repo

    async def record_signup_started(self, user_id: uuid.UUID, at: datetime | None) -> None:
        await self.repo.record_signup_started(self.session, user_id, at)

    async def record_signup_verified(self, user_id: uuid.UUID, at: datetime | None) -> None:
        await self.repo.record_signup_verified(self.session, user_id, at)

    async def record_checkout(
        self,
        *,
        order_id: uuid.UUID,
        user_id: uuid.UUID,
        paid: bool,
        amount: int,
        currency: str,
        at: datetime | None,
    ) -> None:
        await self.repo.record_checkout(
            self.session,
            order_id=order_id,
            user_id=user_id,
            outcome="paid" if paid else "failed",
            amount=amount,
            currency=currency,
            at=at,
        )
