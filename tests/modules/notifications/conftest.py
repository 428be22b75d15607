"""Notifications fixtures: an app with the in-memory email sender and a fast dispatcher."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.modules.notifications.senders import MEMORY_SENDER, MemoryEmailSender
from app.platform.config import Settings
from app.platform.security import create_access_token
from tests.helpers import asgi_client, make_settings, started
from tools.pgstack import Stack


@pytest.fixture(scope="session")
def notif_settings(migrated: Stack) -> Settings:
    return make_settings(
        migrated,
        email_backend="memory",
        events_poll_interval_seconds=0.1,
        events_backoff_base_seconds=0.05,
        events_max_attempts=5,
    )


@pytest.fixture
async def notif_app(notif_settings: Settings) -> AsyncIterator[FastAPI]:
    async with started(create_app(notif_settings)) as application:
        yield application


@pytest.fixture
async def api(notif_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(notif_app) as c:
        yield c


@pytest.fixture
def outbox() -> Iterator[MemoryEmailSender]:
    MEMORY_SENDER.sent.clear()
    MEMORY_SENDER.fail_next = 0
    yield MEMORY_SENDER
    MEMORY_SENDER.fail_next = 0


def bearer(settings: Settings, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_access_token(settings, user_id, ['member'])}"}
