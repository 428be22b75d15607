"""Liveness (``/healthz``) and readiness (``/readyz``): primary, replica and migration state."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.platform.db.availability import RETRY_AFTER_SECONDS
from app.platform.db.engines import Database
from app.platform.db.migrations import applied_heads, expected_heads
from app.platform.db.replica import ReplicaState
from app.platform.web.problems import problem_response

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


def _replica(state: ReplicaState) -> dict[str, Any]:
    if not state.configured:
        return {"status": "not_configured"}
    data = state.as_dict()
    data.pop("configured")
    data["routing"] = "replica" if state.healthy else "primary"
    return data


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

    # The routing monitor's own check: readiness and read routing never disagree.
    state = await db.monitor.check()
    checks["replica"] = _replica(state)

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
            # A load balancer or client that honours it asks again when a restart may be over.
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            checks=checks,
        )
    replica_ok = state.healthy or not state.configured
    status = "ok" if replica_ok else "degraded"
    return JSONResponse({"status": status, "checks": checks})
