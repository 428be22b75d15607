"""auth's queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ColumnElement

from app.modules.auth.models import OneTimeToken, RefreshToken, TokenEpoch, User
from app.platform.db.read_session import AsyncReadSession


@dataclass(frozen=True, slots=True)
class Credentials:
    """What signing in needs of an account, read in one statement (role and epoch agree)."""

    id: uuid.UUID
    email: str
    password_hash: str
    role: str
    verified: bool
    epoch: int


_EPOCH = func.coalesce(TokenEpoch.epoch, 0)
_CREDENTIALS = select(
    User.id, User.email, User.password_hash, User.role, User.email_verified_at.is_not(None), _EPOCH
).outerjoin(TokenEpoch, TokenEpoch.user_id == User.id)


class UserReads:
    """The reads a read-only endpoint makes: on the read session or the primary's."""

    def __init__(self, session: AsyncReadSession) -> None:
        self.session = session

    async def user_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email))

    async def credentials(
        self, *, email: str | None = None, user_id: uuid.UUID | None = None
    ) -> Credentials | None:
        stmt = _CREDENTIALS.where(User.email == email if user_id is None else User.id == user_id)
        row = (await self.session.execute(stmt)).first()
        return Credentials(*row) if row is not None else None

    async def user_by_id(self, user_id: uuid.UUID) -> User | None:
        return await self.session.scalar(select(User).where(User.id == user_id))

    async def list_users(
        self, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[User]:
        stmt = select(User).order_by(User.created_at, User.id).limit(limit)
        if after is not None:
            stmt = stmt.where(tuple_(User.created_at, User.id) > tuple_(*after))
        return (await self.session.scalars(stmt)).all()


class AuthRepository(UserReads):
    """Every query of auth, writes included: on the primary session only."""

    session: AsyncSession

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.session = session

    async def user_by_id(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        stmt = select(User).where(User.id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await self.session.execute(
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )

    async def bump_epoch(self, user_id: uuid.UUID) -> None:
        """Revoke every access token of the account issued so far."""
        stmt = insert(TokenEpoch).values(user_id=user_id, epoch=1)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[TokenEpoch.user_id],
                set_={"epoch": TokenEpoch.epoch + 1, "changed_at": func.now()},
            )
        )

    async def delete_user(self, user_id: uuid.UUID) -> None:
        # Refresh and one-time tokens go with it (ON DELETE CASCADE).
        await self.session.execute(delete(User).where(User.id == user_id))

    async def refresh_by_hash(self, token_hash: str) -> RefreshToken | None:
        stmt = select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        return await self.session.scalar(stmt)

    async def revoke_family(self, family_id: uuid.UUID) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )

    async def revoke_all_for_user(self, user_id: uuid.UUID) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )

    async def one_time_token(self, token_hash: str, purpose: str) -> OneTimeToken | None:
        stmt = (
            select(OneTimeToken)
            .where(OneTimeToken.token_hash == token_hash, OneTimeToken.purpose == purpose)
            .with_for_update()
        )
        return await self.session.scalar(stmt)

    async def retire_one_time_tokens(self, user_id: uuid.UUID, purpose: str) -> None:
        await self.session.execute(
            update(OneTimeToken)
            .where(
                OneTimeToken.user_id == user_id,
                OneTimeToken.purpose == purpose,
                OneTimeToken.used_at.is_(None),
            )
            .values(used_at=func.now())
        )

    def add(self, obj: User | RefreshToken | OneTimeToken) -> None:
        self.session.add(obj)


async def token_is_current(
    conn: AsyncConnection, user_id: uuid.UUID, epoch: int, session_id: uuid.UUID | None
) -> bool:
    """One statement: the epoch is the account's, and the sign-in (if named) is not revoked."""
    current = select(TokenEpoch.epoch).where(TokenEpoch.user_id == user_id)
    epoch_ok = func.coalesce(current.scalar_subquery(), 0) == epoch
    signed_in: ColumnElement[bool] = literal(True)
    if session_id is not None:
        signed_in = exists().where(
            RefreshToken.family_id == session_id,
            RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None),
        )
    return bool(await conn.scalar(select(epoch_ok & signed_in)))
