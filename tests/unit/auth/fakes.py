"""In-memory stand-ins for auth's repository, hasher and rate limiter."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.modules.auth.models import OneTimeToken, RefreshToken, User
from app.modules.auth.passwords import Passwords
from app.modules.auth.repository import AuthRepository, Credentials
from app.platform.config import Settings
from app.platform.ratelimit import Check, RateLimiter
from tests.unit.fakes import Clock


class MemoryAuthRepository(AuthRepository):
    """auth's queries over lists; ``now`` stands for the database's ``now()``."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(cast(AsyncSession, None))
        self.clock = clock
        self.users: dict[uuid.UUID, User] = {}
        self.refresh_tokens: list[RefreshToken] = []
        self.one_time: list[OneTimeToken] = []
        self.epochs: dict[uuid.UUID, int] = {}

    def add(self, obj: User | RefreshToken | OneTimeToken) -> None:
        if isinstance(obj, User):
            obj.created_at = obj.created_at or self.clock()
            self.users[obj.id] = obj
        elif isinstance(obj, RefreshToken):
            self.refresh_tokens.append(obj)
        else:
            self.one_time.append(obj)

    async def user_by_email(self, email: str) -> User | None:
        return next((u for u in self.users.values() if u.email == email), None)

    async def user_by_id(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        return self.users.get(user_id)

    async def credentials(
        self, *, email: str | None = None, user_id: uuid.UUID | None = None
    ) -> Credentials | None:
        user = await self.user_by_email(email or "") if user_id is None else self.users.get(user_id)
        if user is None:
            return None
        return Credentials(
            user.id,
            user.email,
            user.password_hash,
            user.role,
            user.email_verified_at is not None,
            self.epochs.get(user.id, 0),
        )

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        self.users[user_id].password_hash = password_hash

    async def bump_epoch(self, user_id: uuid.UUID) -> None:
        self.epochs[user_id] = self.epochs.get(user_id, 0) + 1

    async def delete_user(self, user_id: uuid.UUID) -> None:
        del self.users[user_id]
        self.refresh_tokens = [t for t in self.refresh_tokens if t.user_id != user_id]

    async def list_users(
        self, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[User]:
        ordered = sorted(self.users.values(), key=lambda u: (u.created_at, u.id))
        return [u for u in ordered if after is None or (u.created_at, u.id) > after][:limit]

    async def refresh_by_hash(self, token_hash: str) -> RefreshToken | None:
        return next((t for t in self.refresh_tokens if t.token_hash == token_hash), None)

    async def revoke_family(self, family_id: uuid.UUID) -> None:
        self._revoke(t for t in self.refresh_tokens if t.family_id == family_id)

    async def revoke_all_for_user(self, user_id: uuid.UUID) -> None:
        self._revoke(t for t in self.refresh_tokens if t.user_id == user_id)

    def _revoke(self, tokens: Iterable[RefreshToken]) -> None:
        for token in tokens:
            token.revoked_at = token.revoked_at or self.clock()

    async def one_time_token(self, token_hash: str, purpose: str) -> OneTimeToken | None:
        return next(
            (t for t in self.one_time if t.token_hash == token_hash and t.purpose == purpose),
            None,
        )

    async def retire_one_time_tokens(self, user_id: uuid.UUID, purpose: str) -> None:
        for token in self.one_time:
            if token.user_id == user_id and token.purpose == purpose and token.used_at is None:
                token.used_at = self.clock()


class PlainPasswords(Passwords):
    """A hasher without the hash (argon2 takes ~100 ms a call; the rules are what is tested)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.hashed = 0

    async def hash(self, password: str) -> str:
        self.hashed += 1
        return f"plain${password}"

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        return stored_hash == f"plain${password}"

    def needs_rehash(self, stored_hash: str) -> bool:
        return False


class CountingLimiter(RateLimiter):
    """Counts attempts per limit key, and refuses nothing."""

    def __init__(self) -> None:
        super().__init__(cast(AsyncEngine, None))
        self.counts: dict[str, int] = {}

    async def consume(self, *checks: Check) -> None:
        for limit, subject in checks:
            key = limit.key(subject)
            self.counts[key] = self.counts.get(key, 0) + 1

    async def give_back(self, *checks: Check, clear: Iterable[Check] = ()) -> None:
        for limit, subject in checks:
            self.counts[limit.key(subject)] -= 1
        for limit, subject in clear:
            self.counts.pop(limit.key(subject), None)
