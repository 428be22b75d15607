"""Fixtures for the analytics tests: tokens, replica catch-up, a primary session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.platform.config import Settings
from app.platform.security import create_access_token
from tests.helpers import wait_for
from tools.pgstack import Stack


def bearer(settings: Settings, *roles: str, user_id: uuid.UUID | None = None) -> dict[str, str]:
    token = create_access_token(settings, user_id or uuid.uuid4(), roles)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin_headers(settings: Settings) -> dict[str, str]:
    return bearer(settings, "member", "admin")


@pytest.fixture
def member_headers(settings: Settings) -> dict[str, str]:
    return bearer(settings, "member")


async def replica_caught_up(stack: Stack, db: str = "app") -> None:
    """Wait until the replica has replayed everything the primary has written so far.

    The insert position, not the write position: the test cluster commits asynchronously, so a
    commit that returned may still sit in WAL buffers, past pg_current_wal_lsn().
    """
    target = stack.primary.psql("SELECT pg_current_wal_insert_lsn()", db=db)

    async def replayed() -> bool:
        done = stack.replica.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn", db=db)
        return done == "t"

    await wait_for(replayed, timeout=15)


@pytest.fixture
async def primary_session(app: FastAPI) -> AsyncIterator[AsyncSession]:
    async with app.state.db.session() as session:
        yield session
