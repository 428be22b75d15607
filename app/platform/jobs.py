"""Periodic jobs (the worker's housekeeping): each on its own interval, failures kept apart.

A job that raises is logged and counted, and runs again at its next interval; it never stops the
other jobs or the process. ``jobs_runs_total{job, outcome}`` counts runs (``ok``, ``failed``) and
``jobs_last_success_timestamp_seconds{job}`` says when each last succeeded, so an alert can tell a
job that stopped working from one that has nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from app.platform.observability.logging import get_logger
from app.platform.observability.registry import counter, gauge

log = get_logger("app.jobs")

runs_total = counter("jobs_runs_total", "Runs of the periodic jobs, by outcome", ["job", "outcome"])
last_success = gauge(
    "jobs_last_success_timestamp_seconds",
    "Unix time of each periodic job's last successful run",
    ["job"],
    multiprocess_mode="max",
)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval_seconds: float
    run: Callable[[], Awaitable[object]]
    # Wait this long before the first run (0: at once).
    first_after_seconds: float = 0.0


async def run_once(job: Job) -> bool:
    """Run ``job`` once, counting and logging the outcome; True when it succeeded."""
    try:
        await job.run()
    except asyncio.CancelledError:
        raise
    except Exception:
        runs_total.labels(job=job.name, outcome="failed").inc()
        log.exception("job_failed", job=job.name)
        return False
    runs_total.labels(job=job.name, outcome="ok").inc()
    last_success.labels(job=job.name).set(time.time())
    return True


async def run_jobs(jobs: Sequence[Job], stop: asyncio.Event) -> None:
    """Run every job at its interval until ``stop`` is set (a run in progress finishes first)."""

    async def loop(job: Job) -> None:
        if job.first_after_seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=job.first_after_seconds)
        while not stop.is_set():
            await run_once(job)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=job.interval_seconds)

    for job in jobs:
        runs_total.labels(job=job.name, outcome="ok")
        runs_total.labels(job=job.name, outcome="failed")
    await asyncio.gather(*(loop(job) for job in jobs))
