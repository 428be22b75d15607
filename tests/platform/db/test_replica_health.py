"""The health check: lag in bytes and in seconds, thresholds, and the routing that follows."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import FastAPI

from app.main import create_app
from app.platform.config import Settings
from tests.helpers import make_settings, started, wait_for
from tests.platform.db.conftest import (
    client,
    gauge,
    notes_router,
    one_replica,
    routes,
    running,
    wait_paused,
)
from tools.pgstack import Stack

BULK_WAL = (
    "INSERT INTO test_routing_note (owner, body) "
    "SELECT 'bulk', (SELECT string_agg(md5(random()::text || x::text || g::text), '') "
    "FROM generate_series(1, 30) AS x) FROM generate_series(1, 600) AS g"
)


async def _read_reason(app: FastAPI, note_id: int) -> tuple[str, str]:
    async with client(app) as c:
        body = (await c.get(f"/_test/notes/{note_id}")).json()
    return body["served_by"], body["reason"]


async def test_lag_in_bytes_over_the_limit_sends_reads_to_the_primary(
    notes_table: Stack,
) -> None:
    settings = one_replica(
        notes_table, db_replica_check_interval_seconds=0.2, db_replica_max_lag_bytes=64 * 1024
    )
    async with running(settings) as app:
        monitor = app.state.db.monitor
        notes_table.replica.psql("SELECT pg_wal_replay_pause()")
        try:
            await wait_paused(notes_table)
            notes_table.primary.psql(BULK_WAL, db="app")
            state = await monitor.check()
            assert state.reachable
            assert not state.healthy
            assert state.lag_bytes > 64 * 1024
            assert "bytes" in state.error
            assert gauge("db_replica_healthy", app) == 0
            assert gauge("db_replica_lag_bytes", app) == state.lag_bytes
            before = routes("primary", "replica_unhealthy")
            assert await _read_reason(app, 1) == ("primary", "replica_unhealthy")
            assert routes("primary", "replica_unhealthy") == before + 1
            async with client(app) as c:
                ready = (await c.get("/readyz")).json()
            assert ready["status"] == "degraded"
            assert ready["checks"]["replica"]["status"] == "up"
            assert ready["checks"]["replica"]["healthy"] is False
            assert ready["checks"]["replica"]["lag_bytes"] > 64 * 1024
        finally:
            notes_table.replica.psql("SELECT pg_wal_replay_resume()")

        async def recovered() -> bool:
            return bool((await monitor.check()).healthy)

        await wait_for(recovered, timeout=15)
        assert gauge("db_replica_healthy", app) == 1
        lag = gauge("db_replica_lag_bytes", app)
        assert lag is not None
        assert lag < 64 * 1024
        assert await _read_reason(app, 1) == ("replica", "replica")


async def test_lag_in_seconds_counts_only_while_bytes_are_behind(notes_table: Stack) -> None:
    # A limit of a few seconds, so "under the limit" holds with a margin on a busy machine.
    limit = 4.0
    settings = one_replica(
        notes_table, db_replica_check_interval_seconds=0.2, db_replica_max_lag_seconds=limit
    )
    async with running(settings) as app, client(app, uuid.uuid4()) as writer:
        monitor = app.state.db.monitor
        note_id = (await writer.post("/_test/notes", json={"body": "x"})).json()["id"]
        # An idle primary: the last replayed commit gets old, yet nothing is behind.
        await asyncio.sleep(limit + 0.5)
        idle_for = float(
            notes_table.replica.psql(
                "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
            )
        )
        assert idle_for > limit
        state = await monitor.check()
        assert state.healthy, state
        assert state.lag_seconds < limit

        notes_table.replica.psql("SELECT pg_wal_replay_pause()")
        try:
            await wait_paused(notes_table)
            await monitor.check()  # the replica holds everything up to here
            await writer.put(f"/_test/notes/{note_id}", json={"body": "y"})
            state = await monitor.check()
            # Bytes behind now; staleness is since the last position it had caught up with,
            # not since the last commit it replayed (over the limit ago).
            assert state.lag_bytes > 0
            assert 0 < state.lag_seconds < limit, state
            assert state.healthy
            await asyncio.sleep(limit + 0.2)
            state = await monitor.check()
            assert state.lag_seconds > limit
            assert not state.healthy
            assert "behind by" in state.error
            assert gauge("db_replica_lag_seconds", app) == state.lag_seconds
            assert await _read_reason(app, note_id) == ("primary", "replica_unhealthy")
        finally:
            notes_table.replica.psql("SELECT pg_wal_replay_resume()")


async def test_without_a_replica_reads_go_to_the_primary(notes_table: Stack) -> None:
    settings = make_settings(notes_table, replica_database_url=None)
    app = create_app(settings)
    app.include_router(notes_router())
    async with started(app), client(app) as c:
        before = routes("primary", "no_replica")
        body = (await c.get("/_test/notes/1")).json()
        assert (body["served_by"], body["reason"]) == ("primary", "no_replica")
        assert routes("primary", "no_replica") == before + 1
        ready = (await c.get("/readyz")).json()
        assert ready["status"] == "ok"
        assert ready["checks"]["replica"] == {"status": "not_configured"}


async def test_routing_can_be_switched_off(routing_settings: Settings) -> None:
    settings = routing_settings.model_copy(update={"db_replica_reads": False})
    async with running(settings) as app:
        assert await _read_reason(app, 1) == ("primary", "routing_disabled")
