"""Liveness (``/healthz``) and readiness (``/readyz``): primary, replicas and migration state."""

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


def _replica(name: str, state: ReplicaState) -> dict[str, Any]:
    data = {"name": name, **state.as_dict()}
    data.pop("configured")
    return data


def _replica_summary(replicas: list[dict[str, Any]]) -> dict[str, Any]:
    """The replicas taken together: "up" when all are, "partial" when some are."""
    if not replicas:
        return {"status": "not_configured"}
    up = [r for r in replicas if r["status"] == "up"]
    healthy = [r["name"] for r in replicas if r["healthy"]]
    lags = [r["lag_bytes"] for r in up if r["lag_bytes"] is not None]
    seconds = [r["lag_seconds"] for r in up if r["lag_seconds"] is not None]
    errors = [f"{r['name']}: {r['error']}" for r in replicas if r["error"]]
    return {
        "status": "up" if len(up) == len(replicas) else "partial" if up else "down",
        "healthy": len(healthy) == len(replicas),
        "serving": healthy,
        "routing": "replica" if healthy else "primary",
        "lag_bytes": max(lags, default=None),
        "lag_seconds": max(seconds, default=None),
        "error": "; ".join(errors) or None,
    }


def _failure(exc: BaseException) -> dict[str, Any]:
    reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
    return {"status": "down", "error": reason, "detail": str(exc)[:200] or reason}


@router.get(
    "/readyz",
    summary="Readiness: primary reachable and migrated; each replica's state reported",
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

    # The routing monitors' own checks: readiness and read routing never disagree.
    states = await db.monitors.check()
    replicas = [_replica(m.name, state) for m, state in zip(db.monitors, states, strict=True)]
    checks["replica"] = _replica_summary(replicas)
    if replicas:
        checks["replicas"] = replicas

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
    status = "ok" if all(state.healthy for state in states) else "degraded"
    return JSONResponse({"status": status, "checks": checks})
