"""An unhandled error costs its own request milliseconds and the other requests nothing, in
either log format: tracebacks plain, without local variables, bounded."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from app.main import create_app
from app.platform.config import Settings
from app.platform.observability.logging import (
    MAX_TRACEBACK_LINE_CHARS,
    MAX_TRACEBACK_LINES,
)
from tests.helpers import serving

FAILURES = 20
# The acceptance: /healthz p99 while errors are logged (the old console rendering: 9-24 s).
HEALTHZ_P99_SECONDS = 0.100
SECRET_LOCAL = "a-local-variable-that-must-never-reach-the-log"


def _ping(depth: int, payload: Any) -> None:
    if depth == 0:
        raise RuntimeError("deep failure " + "x" * 5000)
    _pong(depth - 1, payload)


def _pong(depth: int, payload: Any) -> None:
    # Two functions in turn: no "[Previous line repeated]" shortens the traceback.
    _ping(depth, payload)


def crash_router(depth: int) -> APIRouter:
    router = APIRouter()

    @router.get("/_test/fine")
    async def fine() -> None:
        return None

    @router.get("/_test/crash")
    async def crash() -> None:
        rows = [{"id": i, "body": SECRET_LOCAL} for i in range(2000)]
        try:
            _ping(depth, rows)
        except RuntimeError as exc:
            raise ValueError("the handler failed") from exc

    return router


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _errors_while_polling(
    client: httpx.AsyncClient, path: str = "/_test/crash"
) -> tuple[list[int], list[float]]:
    """FAILURES requests to ``path`` in a row while another client polls /healthz."""
    latencies: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set():
            started = time.perf_counter()
            resp = await client.get("/healthz")
            latencies.append(time.perf_counter() - started)
            assert resp.status_code == 200
            await asyncio.sleep(0.005)

    poller = asyncio.create_task(poll())
    statuses = []
    for _ in range(FAILURES):
        statuses.append((await client.get(path)).status_code)
        await asyncio.sleep(0.02)  # room for the poller between failures
    done.set()
    await poller
    return statuses, latencies


@pytest.mark.parametrize("json_logs", [False, True], ids=["development", "json"])
async def test_unhandled_errors_do_not_stall_other_requests(
    settings: Settings, json_logs: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings.model_copy(update={"log_json": json_logs}))
    app.include_router(crash_router(depth=40))
    async with serving(app) as client:
        await client.get("/healthz")
        # The same rounds without failures first: this machine's noise, side by side.
        fine, baseline = await _errors_while_polling(client, "/_test/fine")
        statuses, latencies = await _errors_while_polling(client)
    assert fine == [200] * FAILURES
    assert statuses == [500] * FAILURES
    assert len(latencies) >= FAILURES
    p99, base_p99 = _percentile(latencies, 0.99), _percentile(baseline, 0.99)
    # 100 ms, or three times the same rounds without failures when the machine is that loaded;
    # the console rendering this guards against stalled the loop for seconds per failure.
    limit = max(HEALTHZ_P99_SECONDS, 3 * base_p99)
    mode = "json" if json_logs else "development"
    print(f"\n{mode}: /healthz p99 {p99 * 1000:.1f} ms (without failures {base_p99 * 1000:.1f})")
    assert p99 < limit, f"/healthz p99 {p99 * 1000:.0f} ms, limit {limit * 1000:.0f} ms"
    logged = capsys.readouterr().err
    assert logged.count("unhandled exception") == FAILURES
    assert SECRET_LOCAL not in logged


@pytest.mark.parametrize("json_logs", [False, True], ids=["development", "json"])
async def test_a_traceback_is_plain_without_locals_and_bounded(
    settings: Settings, json_logs: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings.model_copy(update={"log_json": json_logs}))
    app.include_router(crash_router(depth=400))  # ~1,600 lines in full
    async with serving(app) as client:
        capsys.readouterr()
        assert (await client.get("/_test/crash")).status_code == 500
    logged = capsys.readouterr().err
    if json_logs:
        line = next(json.loads(x) for x in logged.splitlines() if "unhandled exception" in x)
        traceback = line["exception"]
    else:
        start = logged.index("unhandled exception")
        traceback = logged[start:].split("\n", 1)[1]
        traceback = traceback.split("\n20", 1)[0]  # up to the next line's timestamp
    lines = traceback.split("\n")
    assert lines[0] == "Traceback (most recent call last):"
    assert len(lines) <= MAX_TRACEBACK_LINES
    assert max(len(x) for x in lines) <= MAX_TRACEBACK_LINE_CHARS + 40
    assert "lines cut" in traceback
    # Both ends stay: where the request entered, and the error with its cause.
    assert "in _ping" in traceback
    assert "ValueError: the handler failed" in traceback
    assert SECRET_LOCAL not in logged
    assert "locals" not in traceback
