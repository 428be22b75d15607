"""Request-scoped sessions as FastAPI dependencies: the primary session is the request's unit of
work, the read session is typed so that it cannot write (``app/platform/db/read_session.py``).

After a commit that wrote, the primary session issues a consistency token (handed to the
response by the platform middleware) and remembers the caller's write position; the read
session honours both.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.platform.db.consistency import STATE_KEY, TOKEN_COOKIE, TOKEN_HEADER, PresentedTokens
from app.platform.db.engines import Database
from app.platform.db.failures import is_unavailable
from app.platform.db.read_session import AsyncReadSession
from app.platform.db.routing import ReadRequirement
from app.platform.errors import AppError

log = structlog.stdlib.get_logger("app.db")


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _user_key(request: Request) -> object | None:
    # Set by app.platform.web.security's dependencies once the caller is authenticated.
    principal = getattr(request.state, "principal", None)
    return getattr(principal, "user_id", None)


async def _wrote(session: AsyncSession) -> bool:
    info = session.sync_session.info
    if info.get("wrote"):
        return True
    if info.get("maybe_wrote") and session.in_transaction():
        # PostgreSQL assigns a transaction id at the first write, and only then.
        return bool(
            await session.scalar(text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL"))
        )
    return False


async def _issue_token(request: Request, db: Database) -> None:
    try:
        lsn = await db.wal_insert_lsn()
    except Exception:
        # The commit succeeded: the client gets its success, only without read-your-writes.
        log.warning("no consistency token: the primary's WAL position was unavailable")
        return
    setattr(request.state, STATE_KEY, db.tokens.encode(lsn))
    user = _user_key(request)
    if user is not None:
        db.writes.remember(user, lsn)


async def _commit(session: AsyncSession) -> bool:
    """Commit; whether the transaction wrote anything."""
    wrote = await _wrote(session)
    await session.commit()
    return wrote


async def _rollback(session: AsyncSession) -> None:
    """Roll back; a connection already lost is dropped, and the request's own error stands."""
    try:
        await session.rollback()
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        with contextlib.suppress(Exception):
            await session.invalidate()


async def _primary_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Commit when the handler returns, roll back when it raises. Services only flush."""
    db = get_database(request)
    async with db.session() as session:
        try:
            yield session
        except AppError as exc:
            # Most errors undo the request's work; a few keep it (see AppError.commit).
            if not exc.commit:
                await _rollback(session)
                raise
            if await _commit(session):
                await _issue_token(request, db)
            raise
        except BaseException:
            await _rollback(session)
            raise
        wrote = await _commit(session)
    if wrote:
        await _issue_token(request, db)


async def _read_session(request: Request) -> AsyncIterator[AsyncReadSession]:
    """A session for reads that need no transaction; typed so that it cannot write."""
    db = get_database(request)
    values = [request.headers.get(TOKEN_HEADER), request.cookies.get(TOKEN_COOKIE)]
    presented = PresentedTokens.read(db.tokens, [v for v in values if v is not None])

    def requirement() -> ReadRequirement:
        user = _user_key(request)
        return ReadRequirement(
            token_lsn=presented.lsn,
            token_invalid=presented.invalid,
            remembered_lsn=db.writes.recall(user) if user is not None else None,
        )

    async with db.read_session(requirement=requirement) as session:
        try:
            yield session
        finally:
            await session.rollback()


# scope="function": the commit runs when the handler returns, before the response is sent, so a
# client never sees a success whose commit then failed.
PrimarySession = Annotated[AsyncSession, Depends(_primary_session, scope="function")]
ReadSession = Annotated[AsyncReadSession, Depends(_read_session, scope="function")]
