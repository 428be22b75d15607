"""The replica dies in the middle of reads: nobody notices but the metrics and /readyz."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import case, func, select

from app.main import create_app
from app.platform.config import Settings
from app.platform.web.sessions import ReadSession
from tests.helpers import started, wait_for
from tests.platform.db.conftest import (
    client,
    gauge,
    notes,
    notes_router,
    routes,
    running,
)
from tools.pgstack import Stack

READS = 200
WORKERS = 4


@pytest.fixture
def replica_restored(notes_table: Stack) -> Iterator[Stack]:
    try:
        yield notes_table
    finally:
        notes_table.replica.start()


@pytest.mark.slow
async def test_replica_stopped_mid_reads_then_restarted(
    routing_settings: Settings, replica_restored: Stack
) -> None:
    stack = replica_restored
    async with running(routing_settings) as app, client(app) as anonymous:
        async with client(app, uuid.uuid4()) as writer:
            resp = await writer.post("/_test/notes", json={"body": "steady"})
            note_id = resp.json()["id"]

        async def replicated() -> bool:
            r = await anonymous.get(f"/_test/notes/{note_id}")
            return bool(r.json()["body"] == "steady" and r.json()["served_by"] == "replica")

        await wait_for(replicated, timeout=10)
        fallbacks_before = routes("primary", "replica_error") + routes(
            "primary", "replica_unhealthy"
        )
        results = await _reads_across_a_stop(anonymous, note_id, stack)

        assert len(results) == READS
        failures = [r for r in results if r.status_code != 200 or r.json()["body"] != "steady"]
        assert failures == []
        served = [r.json()["served_by"] for r in results]
        assert "replica" in served
        assert served[-1] == "primary"
        # Every read the primary served was a counted fall back.
        fallbacks = routes("primary", "replica_error") + routes("primary", "replica_unhealthy")
        assert fallbacks - fallbacks_before == served.count("primary")

        ready = (await anonymous.get("/readyz")).json()
        assert ready["status"] == "degraded"
        assert ready["checks"]["replica"]["status"] == "down"
        assert ready["checks"]["replica"]["healthy"] is False
        assert ready["checks"]["replica"]["routing"] == "primary"
        assert ready["checks"]["replica"]["error"]
        assert gauge("db_replica_healthy", app) == 0

        await asyncio.to_thread(stack.replica.start)
        started = time.monotonic()

        async def on_replica() -> bool:
            r = await anonymous.get(f"/_test/notes/{note_id}")
            assert r.status_code == 200
            return bool(r.json()["served_by"] == "replica")

        # Nothing but the monitor's next check can send reads back: that they return at all,
        # with no request of ours doing it, is what is asserted; how soon depends on the machine.
        await wait_for(on_replica, timeout=60, interval=0.02)
        print(f"\nback on the replica {time.monotonic() - started:.2f}s after its restart")
        assert gauge("db_replica_healthy", app) == 1
        ready = (await anonymous.get("/readyz")).json()
        assert ready["status"] == "ok"
        assert ready["checks"]["replica"]["status"] == "up"


async def _reads_across_a_stop(
    anonymous: httpx.AsyncClient, note_id: str, stack: Stack
) -> list[httpx.Response]:
    """READS reads by WORKERS readers, the replica stopped a quarter of the way through."""
    results: list[httpx.Response] = []
    stopped = asyncio.Event()

    async def reader(count: int) -> None:
        for _ in range(count):
            results.append(await anonymous.get(f"/_test/notes/{note_id}"))
            # Paced so that the stop lands mid-run, with reads on both sides of it.
            await asyncio.sleep(0.005 if stopped.is_set() else 0.02)

    async def stopper() -> None:
        await wait_for(lambda: _at_least(results, READS // 4), timeout=30, interval=0.005)
        await asyncio.to_thread(stack.replica.stop)
        stopped.set()

    await asyncio.gather(stopper(), *(reader(READS // WORKERS) for _ in range(WORKERS)))
    return results


async def _at_least(results: list[httpx.Response], n: int) -> bool:
    return len(results) >= n


async def test_replica_failure_during_a_read_is_retried_on_the_primary(
    routing_settings: Settings, replica_restored: Stack
) -> None:
    """The very first read after the replica vanished: the monitor has not noticed yet."""
    stack = replica_restored
    slow = routing_settings.model_copy(update={"db_replica_check_interval_seconds": 60.0})
    async with running(slow) as app, client(app) as anonymous:
        async with client(app, uuid.uuid4()) as writer:
            note_id = (await writer.post("/_test/notes", json={"body": "retry"})).json()["id"]

        async def replicated() -> bool:
            r = await anonymous.get(f"/_test/notes/{note_id}")
            return bool(r.json()["served_by"] == "replica" and r.json()["body"] == "retry")

        await wait_for(replicated, timeout=10)
        assert app.state.db.monitor.state.healthy
        await asyncio.to_thread(stack.replica.stop)
        before = routes("primary", "replica_error")
        resp = await anonymous.get(f"/_test/notes/{note_id}")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "body": "retry",
            "served_by": "primary",
            "target": "primary",
            "reason": "replica_error",
            "port": stack.primary_port,
        }
        assert routes("primary", "replica_error") == before + 1
        # The failure also tells the monitor: the next read goes straight to the primary.
        resp = await anonymous.get(f"/_test/notes/{note_id}")
        assert resp.json()["reason"] == "replica_unhealthy"


def _parked_router(parked: asyncio.Event, release: asyncio.Event) -> APIRouter:
    """A read that stops between its statement and the end of the request, until released."""
    router = APIRouter()

    @router.get("/_test/parked/{note_id}")
    async def parked_read(note_id: int, session: ReadSession) -> Any:
        row = (
            await session.execute(
                select(notes.c.body, func.pg_is_in_recovery()).where(notes.c.id == note_id)
            )
        ).one()
        parked.set()
        await release.wait()
        return {"body": row[0], "served_by": "replica" if row[1] else "primary"}

    @router.get("/_test/sleepy/{note_id}")
    async def sleepy_read(note_id: int, session: ReadSession) -> Any:
        parked.set()
        # Long on the replica (killed meanwhile), immediate on the primary (the retry).
        pause = case((func.pg_is_in_recovery(), 25), else_=0)
        row = (
            await session.execute(
                select(notes.c.body, func.pg_is_in_recovery(), func.pg_sleep(pause)).where(
                    notes.c.id == note_id
                )
            )
        ).one()
        return {"body": row[0], "served_by": "replica" if row[1] else "primary"}

    return router


@asynccontextmanager
async def _with_parked(
    settings: Settings, parked: asyncio.Event, release: asyncio.Event
) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    app.include_router(notes_router())
    app.include_router(_parked_router(parked, release))
    async with started(app):
        await wait_for(lambda: _healthy(app), timeout=30)
        yield app


async def _healthy(app: FastAPI) -> bool:
    return all(monitor.state.healthy for monitor in app.state.db.monitors)


async def test_replica_killed_after_the_read_the_cleanup_does_not_fail_the_request(
    routing_settings: Settings, replica_restored: Stack
) -> None:
    """The read is done, the replica dies (immediate mode), then the request ends: its session's
    cleanup meets a dead connection, and the client still gets its answer."""
    stack = replica_restored
    slow = routing_settings.model_copy(update={"db_replica_check_interval_seconds": 60.0})
    parked, release = asyncio.Event(), asyncio.Event()
    async with _with_parked(slow, parked, release) as app, client(app) as anonymous:
        async with client(app, uuid.uuid4()) as writer:
            note_id = (await writer.post("/_test/notes", json={"body": "kept"})).json()["id"]

        async def replicated() -> bool:
            r = await anonymous.get(f"/_test/notes/{note_id}")
            return bool(r.json()["served_by"] == "replica" and r.json()["body"] == "kept")

        await wait_for(replicated, timeout=30)
        request = asyncio.create_task(anonymous.get(f"/_test/parked/{note_id}"))
        await asyncio.wait_for(parked.wait(), timeout=30)
        await asyncio.to_thread(stack.replica.stop, "immediate")
        release.set()
        resp = await request
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"body": "kept", "served_by": "replica"}
        # The dead connection went nowhere: the next read is served, by the primary.
        resp = await anonymous.get(f"/_test/notes/{note_id}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["served_by"] == "primary"


async def test_replica_killed_during_a_statement_the_read_is_retried_on_the_primary(
    routing_settings: Settings, replica_restored: Stack
) -> None:
    stack = replica_restored
    slow = routing_settings.model_copy(update={"db_replica_check_interval_seconds": 60.0})
    parked, release = asyncio.Event(), asyncio.Event()
    async with _with_parked(slow, parked, release) as app, client(app) as anonymous:
        async with client(app, uuid.uuid4()) as writer:
            note_id = (await writer.post("/_test/notes", json={"body": "again"})).json()["id"]

        async def replicated() -> bool:
            r = await anonymous.get(f"/_test/notes/{note_id}")
            return bool(r.json()["served_by"] == "replica" and r.json()["body"] == "again")

        await wait_for(replicated, timeout=30)
        before = routes("primary", "replica_error")

        async def sleeping_on_replica() -> bool:
            active = stack.replica.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' "
                "AND state = 'active' AND pid <> pg_backend_pid()"
            )
            return int(active) > 0

        request = asyncio.create_task(anonymous.get(f"/_test/sleepy/{note_id}"))
        await asyncio.wait_for(parked.wait(), timeout=30)
        await wait_for(sleeping_on_replica, timeout=30)
        await asyncio.to_thread(stack.replica.stop, "immediate")
        resp = await asyncio.wait_for(request, timeout=120)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"body": "again", "served_by": "primary"}
        assert routes("primary", "replica_error") == before + 1
