"""Reading accounts: the signed-in user, and the admins' list of users a page at a time."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from app.modules.auth.models import User
from app.modules.auth.repository import UserReads
from app.platform.db.read_session import AsyncReadSession
from app.platform.errors import NotFound
from app.platform.pagination import decode_cursor, encode_cursor


class UsersReader:
    """Read-only use cases, on the read session (replica-routed); nothing here writes."""

    def __init__(self, session: AsyncReadSession, *, repo: UserReads | None = None) -> None:
        self.session = session
        self.repo = repo or UserReads(session)

    async def current_user(self, user_id: uuid.UUID) -> User:
        user = await self.repo.user_by_id(user_id)
        if user is None:
            raise NotFound("The account no longer exists")
        return user

    async def list_users(
        self, *, limit: int, cursor: str | None
    ) -> tuple[Sequence[User], str | None]:
        """A page of users, oldest first, and the cursor of the next page (None: the last)."""
        users = await self.repo.list_users(limit + 1, decode_cursor(cursor))
        page = users[:limit]
        more = len(users) > limit and page
        return page, encode_cursor(page[-1].created_at, page[-1].id) if more else None
