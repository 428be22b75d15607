"""Fixtures for the analytics tests: tokens, replica catch-up, a primary session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.platform.config import Settings
from app.platform.security import create_access_token
from tests.helpers import replica_catch_up
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


async def replica_caught_up(stack: Stack) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    await asyncio.to_thread(replica_catch_up, stack, 15.0)


@pytest.fixture
async def primary_session(app: FastAPI) -> AsyncIterator[AsyncSession]:
    async with app.state.db.session() as session:
        yield session
