"""The notifications queries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, exists, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.notifications.models import DeliveryAttempt, Notification, Preference, Recipient
from app.platform.db.read_session import AsyncReadSession


async def add_notification(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    template: str,
    subject: str,
    body: str,
    source_key: str | None,
) -> tuple[Notification, bool]:
    """The notification for ``source_key``, created unless it exists; (row, created)."""
    if source_key is not None:
        existing = await session.scalar(
            select(Notification).where(Notification.source_key == source_key)
        )
        if existing is not None:
            return existing, False
    notification = Notification(
        id=uuid.uuid4(),
        user_id=user_id,
        template=template,
        subject=subject,
        body=body,
        source_key=source_key,
    )
    session.add(notification)
    await session.flush()
    return notification, True


async def email_already_sent(session: AsyncSession, notification_id: uuid.UUID) -> bool:
    query = select(
        exists().where(
            DeliveryAttempt.notification_id == notification_id,
            DeliveryAttempt.channel == "email",
            DeliveryAttempt.status == "sent",
        )
    )
    return bool(await session.scalar(query))


async def add_attempt(
    session: AsyncSession,
    *,
    notification_id: uuid.UUID,
    channel: str,
    recipient: str | None,
    backend: str,
    status: str,
    detail: str | None = None,
) -> None:
    session.add(
        DeliveryAttempt(
            id=uuid.uuid4(),
            notification_id=notification_id,
            channel=channel,
            recipient=recipient,
            backend=backend,
            status=status,
            detail=detail,
        )
    )
    await session.flush()


async def attempts_for(session: AsyncSession, notification_id: uuid.UUID) -> list[DeliveryAttempt]:
    rows = await session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.notification_id == notification_id)
        .order_by(DeliveryAttempt.attempted_at, DeliveryAttempt.id)
    )
    return list(rows)


async def page_for_user(
    session: AsyncReadSession,
    user_id: uuid.UUID,
    *,
    unread_only: bool,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Notification]:
    """Newest first, starting after the (created_at, id) keyset cursor."""
    query = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    if after is not None:
        query = query.where(tuple_(Notification.created_at, Notification.id) < after)
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return list(await session.scalars(query))


async def count_unread(session: AsyncReadSession, user_id: uuid.UUID) -> int:
    query = select(func.count()).where(
        and_(Notification.user_id == user_id, Notification.read_at.is_(None))
    )
    return int(await session.scalar(query) or 0)


async def mark_read(
    session: AsyncSession, notification_id: uuid.UUID, user_id: uuid.UUID
) -> Notification | None:
    """Mark one of the user's notifications read (once); ``None`` when it is not theirs."""
    query = (
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == user_id)
        .values(read_at=func.coalesce(Notification.read_at, func.now()))
        .returning(Notification)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(query)).one_or_none()


async def mark_all_read(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount


async def preferences(session: AsyncReadSession, user_id: uuid.UUID) -> dict[str, bool]:
    rows = await session.execute(
        select(Preference.category, Preference.email_enabled).where(Preference.user_id == user_id)
    )
    return {row[0]: row[1] for row in rows}


async def email_enabled(session: AsyncSession, user_id: uuid.UUID, category: str) -> bool:
    enabled = await session.scalar(
        select(Preference.email_enabled).where(
            Preference.user_id == user_id, Preference.category == category
        )
    )
    return True if enabled is None else bool(enabled)


async def set_preferences(
    session: AsyncSession, user_id: uuid.UUID, email: dict[str, bool]
) -> None:
    if not email:
        return
    statement = insert(Preference).values(
        [{"user_id": user_id, "category": c, "email_enabled": on} for c, on in email.items()]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[Preference.user_id, Preference.category],
        set_={"email_enabled": statement.excluded.email_enabled, "updated_at": func.now()},
    )
    await session.execute(statement)


async def remember_recipient(session: AsyncSession, user_id: uuid.UUID, email: str) -> None:
    stmt = insert(Recipient).values(user_id=user_id, email=email)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Recipient.user_id], set_={"email": email, "updated_at": func.now()}
        )
    )


async def recipient_email(session: AsyncReadSession, user_id: uuid.UUID) -> str | None:
    return await session.scalar(select(Recipient.email).where(Recipient.user_id == user_id))
