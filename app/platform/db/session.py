"""Request-scoped sessions: the primary session is the request's unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.platform.db.engines import Database
from app.platform.errors import AppError


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _primary_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Commit when the handler returns, roll back when it raises. Services only flush."""
    async with get_database(request).session() as session:
        try:
            yield session
        except AppError as exc:
            await (session.commit() if exc.commit else session.rollback())
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for reads that need no transaction; nothing it does is ever committed."""
    async with get_database(request).read_session() as session:
        try:
            yield session
        finally:
            await session.rollback()


# scope="function": the commit runs when the handler returns, before the response is sent, so a
# client never sees a success whose commit then failed.
PrimarySession = Annotated[AsyncSession, Depends(_primary_session, scope="function")]
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
