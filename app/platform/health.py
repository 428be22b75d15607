"""Liveness (``/healthz``) and readiness (``/readyz``): primary, replica and migration state."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.platform.db.engines import Database
from app.platform.db.lsn import lsn_to_int
from app.platform.db.migrations import applied_heads, expected_heads
from app.platform.errors import problem_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up and serving")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _timed(coro: Any, timeout: float) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    result: dict[str, Any] = await asyncio.wait_for(coro, timeout)
    return result, round((time.perf_counter() - started) * 1000, 2)


async def _check_primary(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        lsn = await conn.scalar(text("SELECT pg_current_wal_lsn()::text"))
        applied = await applied_heads(conn)
    expected = expected_heads()
    return {
        "wal_lsn": lsn,
        "migrations": {
            "at_head": applied == expected,
            "current": sorted(applied),
            "head": sorted(expected),
        },
    }


async def _check_replica(engine: AsyncEngine, primary_lsn: str | None) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"))
        ).one()
    in_recovery, replay_lsn = row
    lag = None
    if primary_lsn and replay_lsn:
        lag = max(0, lsn_to_int(primary_lsn) - lsn_to_int(replay_lsn))
    return {"in_recovery": bool(in_recovery), "replay_lsn": replay_lsn, "lag_bytes": lag}


def _failure(exc: BaseException) -> dict[str, Any]:
    reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
    return {"status": "down", "error": reason, "detail": str(exc)[:200] or reason}


@router.get(
    "/readyz",
    summary="Readiness: primary reachable and migrated; replica state reported",
    responses={503: {"description": "primary down or migrations behind (problem+json)"}},
)
async def readyz(request: Request) -> Any:
    db: Database = request.app.state.db
    timeout = db.settings.readiness_timeout_seconds
    checks: dict[str, Any] = {}

    try:
        primary, ms = await _timed(_check_primary(db.primary), timeout)
        checks["primary"] = {"status": "up", "latency_ms": ms, **primary}
    except Exception as exc:
        checks["primary"] = _failure(exc)

    if db.replica is None:
        checks["replica"] = {"status": "not_configured"}
    else:
        try:
            replica, ms = await _timed(
                _check_replica(db.replica, checks["primary"].get("wal_lsn")), timeout
            )
            checks["replica"] = {"status": "up", "latency_ms": ms, **replica}
        except Exception as exc:
            checks["replica"] = _failure(exc)

    primary_ok = checks["primary"]["status"] == "up"
    migrated = primary_ok and checks["primary"]["migrations"]["at_head"]
    if not primary_ok or not migrated:
        reason = (
            "the primary database is unreachable"
            if not primary_ok
            else "migrations are behind head"
        )
        return problem_response(
            request,
            status=503,
            slug="not-ready",
            title="Service not ready",
            detail=reason,
            checks=checks,
        )
    status = "ok" if checks["replica"]["status"] in ("up", "not_configured") else "degraded"
    return JSONResponse({"status": status, "checks": checks})
