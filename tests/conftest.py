"""Test session: one throwaway PostgreSQL primary + two streaming replicas, migrated to head.

The stack is started by the same code as the developer's local one (tools/pgstack.py), on free
ports in a temporary folder, and removed when the session ends. The app of every test reads from
both replicas (tests.helpers.make_settings); a test about one replica's behaviour configures
that one alone.
"""

from __future__ import annotations

import atexit
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.platform.config import Settings
from app.platform.db.migrations import alembic_config
from tests.helpers import asgi_client, make_settings, replica_catch_up, started
from tools.pgstack import Stack, temporary_stack

SESSION_REPLICAS = 2


@pytest.fixture(scope="session")
def pg_stack() -> Iterator[Stack]:
    stack = temporary_stack(replicas=SESSION_REPLICAS)
    atexit.register(stack.clean)  # also when the session dies before the fixture ends
    stack.start()
    yield stack
    stack.clean()


@pytest.fixture(scope="session")
def migrated(pg_stack: Stack) -> Stack:
    from alembic import command

    command.upgrade(alembic_config(pg_stack.primary_url), "head")
    replica_catch_up(pg_stack)
    return pg_stack


@pytest.fixture(scope="session")
def settings(migrated: Stack) -> Settings:
    return make_settings(migrated)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with started(create_app(settings)) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as c:
        yield c
