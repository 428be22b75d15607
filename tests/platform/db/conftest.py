"""A test-only API over a table of notes: writes through PrimarySession, reads through ReadSession.

Each read answers with the node that served it (``pg_is_in_recovery()`` and the server's port in
the same statement) and the route the read session took, so tests can see routing from the
outside. ``routing_settings`` (and ``one_replica``) configure the session stack's first replica
alone, for the rules of one replica; ``two_replicas`` both.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.platform.config import Settings
from app.platform.errors import NotFound
from app.platform.security import create_access_token
from app.platform.web.security import CurrentPrincipal, OptionalPrincipal
from app.platform.web.sessions import PrimarySession, ReadSession
from tests.helpers import asgi_client, make_settings, started, wait_for
from tools.pgstack import Stack

CHECK_INTERVAL = 0.5
metadata = MetaData()
notes = Table(
    "test_routing_note",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("body", Text, nullable=False),
)


class NoteIn(BaseModel):
    body: str


def notes_router() -> APIRouter:
    router = APIRouter(prefix="/_test/notes")

    @router.post("", status_code=201)
    async def create(note: NoteIn, session: PrimarySession, who: CurrentPrincipal) -> Any:
        new_id = await session.scalar(
            insert(notes).values(owner=str(who.user_id), body=note.body).returning(notes.c.id)
        )
        return {"id": new_id}

    @router.put("/{note_id}")
    async def change(
        note_id: int, note: NoteIn, session: PrimarySession, who: CurrentPrincipal
    ) -> Any:
        await session.execute(update(notes).where(notes.c.id == note_id).values(body=note.body))
        return {"id": note_id}

    @router.post("/{note_id}/fail")
    async def change_then_fail(note_id: int, session: PrimarySession) -> Any:
        await session.execute(update(notes).where(notes.c.id == note_id).values(body="lost"))
        raise NotFound("failing on purpose after a write")

    @router.post("/textual")
    async def textual(note: NoteIn, session: PrimarySession) -> Any:
        if note.body == "write":
            await session.execute(
                text("INSERT INTO test_routing_note (owner, body) VALUES ('t', 'textual')")
            )
        else:
            await session.execute(text("SELECT 1"))
        return {}

    @router.get("/for-update/{note_id}")
    async def for_update(note_id: int, session: ReadSession) -> Any:
        await session.execute(select(notes).where(notes.c.id == note_id).with_for_update())
        return {}

    # The session comes before the principal on purpose: routing waits for the first statement.
    @router.get("/{note_id}")
    async def read(note_id: int, session: ReadSession, who: OptionalPrincipal) -> Any:
        row = (
            await session.execute(
                select(notes.c.body, func.pg_is_in_recovery(), func.inet_server_port()).where(
                    notes.c.id == note_id
                )
            )
        ).one_or_none()
        route = session.route  # type: ignore[attr-defined]
        port = row[2] if row else await session.scalar(select(func.inet_server_port()))
        return {
            "body": row[0] if row else None,
            "served_by": "replica" if row is None or row[1] else "primary",
            "target": route.target,
            "reason": route.reason,
            "port": port,
        }

    return router


@pytest.fixture(scope="session")
async def notes_table(migrated: Stack) -> Stack:
    engine = create_async_engine(migrated.primary_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()
    replicas = [create_async_engine(url) for url in migrated.replica_urls]

    async def replicated() -> bool:
        for replica in replicas:
            async with replica.connect() as conn:
                found = await conn.scalar(
                    text("SELECT to_regclass('test_routing_note') IS NOT NULL")
                )
            if not found:
                return False
        return True

    await wait_for(replicated, timeout=30)
    for replica in replicas:
        await replica.dispose()
    return migrated


def one_replica(stack: Stack, **overrides: object) -> Settings:
    """Settings reading from the stack's first replica only."""
    return make_settings(stack, replica_database_url=stack.replica_url, **overrides)


@pytest.fixture
def routing_settings(notes_table: Stack) -> Settings:
    return one_replica(notes_table, db_replica_check_interval_seconds=CHECK_INTERVAL)


@pytest.fixture
def two_replicas(notes_table: Stack) -> Settings:
    settings = make_settings(notes_table, db_replica_check_interval_seconds=CHECK_INTERVAL)
    assert len(settings.replica_urls) == 2
    return settings


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    """An app instance (its own process memory and monitor) with the notes API mounted."""
    app = create_app(settings)
    app.include_router(notes_router())
    async with started(app):
        await wait_for(lambda: _healthy(app), timeout=15)
        yield app


async def _healthy(app: FastAPI) -> bool:
    return all(monitor.state.healthy for monitor in app.state.db.monitors)


def client(app: FastAPI, user: uuid.UUID | None = None) -> httpx.AsyncClient:
    """A client with its own cookie jar; authenticated as ``user`` when given."""
    headers = {}
    if user is not None:
        token = create_access_token(app.state.settings, user, ["member"])
        headers["authorization"] = f"Bearer {token}"
    return asgi_client(app, headers=headers)


def routes(target: str, reason: str) -> float:
    value = REGISTRY.get_sample_value("db_read_route_total", {"target": target, "reason": reason})
    return value or 0.0


def gauge(name: str, app: FastAPI, replica: int = 0) -> float | None:
    """A replica gauge of ``app``'s ``replica``-th replica (labelled by its name)."""
    monitor = app.state.db.monitors.all[replica]
    return REGISTRY.get_sample_value(name, {"replica": monitor.name})


@pytest.fixture
def replay_paused(notes_table: Stack) -> Iterator[Stack]:
    """Replay paused on the first replica (WAL still arrives, nothing is applied); always
    resumed."""
    replica = notes_table.replica
    replica.psql("SELECT pg_wal_replay_pause()")
    try:
        yield notes_table
    finally:
        replica.psql("SELECT pg_wal_replay_resume()")


async def wait_paused(stack: Stack, replica: int = 0) -> None:
    node = stack.replicas[replica]

    async def paused() -> bool:
        return node.psql("SELECT pg_get_wal_replay_pause_state()") == "paused"

    await wait_for(paused, timeout=10)
