"""The dispatcher as its own process: `python -m app worker`, killed and restarted; the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import bootstrap
from app.modules.notifications.interface import NotificationRequested
from app.platform.config import Settings
from app.platform.events import ListenerRegistry, publish
from tests.helpers import wait_for
from tests.modules.notifications.smtp_sink import serve_smtp
from tests.platform.events.conftest import Probe, ProbeHappened, effect_listener
from tools.pgstack import Stack

ROOT = Path(__file__).resolve().parents[3]


def _env(stack: Stack, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "test",
        "APP_DATABASE_URL": stack.primary_url,
        "APP_REPLICA_DATABASE_URL": stack.replica_url,
        "APP_LOG_JSON": "true",
        **extra,
    }


def _start_worker(stack: Stack, log: Path, smtp_port: int) -> subprocess.Popen[bytes]:
    env = _env(
        stack,
        APP_EMAIL_BACKEND="smtp",
        APP_SMTP_PORT=str(smtp_port),
        APP_EVENTS_CONCURRENCY="8",
        # The lease of a killed worker's deliveries runs out after timeout + 2 s of grace.
        APP_EVENTS_LISTENER_TIMEOUT_SECONDS="2",
        APP_EVENTS_POLL_INTERVAL_SECONDS="0.2",
    )
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
async def test_worker_killed_mid_delivery_loses_and_doubles_nothing(
    migrated: Stack,
    settings: Settings,
    engine: AsyncEngine,
    tmp_path: Path,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    bootstrap.subscribe_listeners(settings)
    total = 400
    user = uuid.uuid4()
    async with AsyncSession(engine) as session:
        for i in range(total):
            await publish(
                session,
                NotificationRequested(
                    user_id=user,
                    template="message",
                    email=f"user{i}@example.com",
                    context={"title": f"Message {i}", "body": "Hello"},
                ),
            )
        await session.commit()

    async def count(sql: str) -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(text(sql), {"user": str(user)}) or 0)

    delivered = (
        "SELECT count(*) FROM platform_event_delivery d JOIN platform_outbox_event e"
        " ON e.id = d.event_id WHERE d.status = 'done'"
        " AND e.payload->>'user_id' = CAST(:user AS text)"
    )
    in_flight = (
        "SELECT count(*) FROM platform_event_delivery d JOIN platform_outbox_event e"
        " ON e.id = d.event_id WHERE d.status = 'pending' AND d.attempts > 0"
        " AND e.payload->>'user_id' = CAST(:user AS text)"
    )
    log = tmp_path / "worker.log"
    # Every email takes the SMTP server 20 ms: deliveries are in flight when the kill lands.
    async with serve_smtp(delay=0.02) as (smtp, port):
        await _kill_and_restart(migrated, log, port, workers, count, delivered, in_flight, total)
        recipients = {str(m["To"]) for m in smtp.messages}
        assert recipients == {f"user{i}@example.com" for i in range(total)}  # no email lost
    notifications = await count(
        "SELECT count(*) FROM notifications_notification WHERE user_id = :user"
    )
    emails_recorded = await count(
        "SELECT count(*) FROM notifications_delivery_attempt a JOIN notifications_notification n"
        " ON n.id = a.notification_id WHERE n.user_id = :user AND a.status = 'sent'"
    )
    # The database side effects exactly once; emails at least once (a killed attempt may have
    # sent one whose record rolled back).
    assert notifications == total
    assert emails_recorded == total
    assert await count(in_flight) == 0

    workers[1].send_signal(signal.SIGTERM)
    assert workers[1].wait(timeout=60) == 0, log.read_text()


async def _kill_and_restart(
    migrated: Stack,
    log: Path,
    port: int,
    workers: list[subprocess.Popen[bytes]],
    count: Callable[[str], Awaitable[int]],
    delivered: str,
    in_flight: str,
    total: int,
) -> None:
    workers.append(_start_worker(migrated, log, port))
    await wait_for(lambda: _at_least(count, delivered, 40), timeout=30, interval=0.01)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    done_at_kill = await count(delivered)
    assert done_at_kill < total, "the worker finished before it could be killed"
    claimed = await count(in_flight)
    assert claimed > 0, "nothing was in flight when the worker died"

    workers.append(_start_worker(migrated, log, port))
    await wait_for(lambda: _at_least(count, delivered, total), timeout=60, interval=0.1)


async def _at_least(count: Callable[[str], Awaitable[int]], sql: str, n: int) -> bool:
    return await count(sql) >= n


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=_env(stack),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_events_failed_and_resubmit(migrated: Stack, probe: Probe) -> None:
    import asyncio

    registry = ListenerRegistry()
    name = probe.listener("cli")
    registry.subscribe(ProbeHappened, effect_listener(), name=name)
    (event_id,) = await probe.publish(registry, [1])
    async with probe.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE platform_event_delivery SET status = 'failed', attempts = 10,"
                " last_error = 'RuntimeError: boom', finished_at = now() - interval '1 hour'"
                " WHERE event_id = :id"
            ),
            {"id": event_id},
        )
    delivery_id = str((await probe.delivery(name))["id"])

    listed = await asyncio.to_thread(_cli, migrated, "events", "failed", "--listener", name)
    assert listed.returncode == 0, listed.stderr
    assert delivery_id in listed.stdout
    assert "RuntimeError: boom" in listed.stdout
    assert "tests.probe_happened v1" in listed.stdout

    too_recent = await asyncio.to_thread(
        _cli, migrated, "events", "failed", "--listener", name, "--older-than", "2h"
    )
    assert delivery_id not in too_recent.stdout
    other_event = await asyncio.to_thread(
        _cli, migrated, "events", "failed", "--listener", name, "--event", "tests.other"
    )
    assert delivery_id not in other_event.stdout

    bad = await asyncio.to_thread(_cli, migrated, "events", "failed", "--older-than", "soon")
    assert bad.returncode != 0
    assert "not a duration" in bad.stderr

    resubmitted = await asyncio.to_thread(
        _cli,
        migrated,
        "events",
        "resubmit",
        "--listener",
        name,
        "--event",
        "tests.probe_happened",
        "--older-than",
        "30m",
    )
    assert resubmitted.returncode == 0, resubmitted.stderr
    assert "resubmitted 1 delivery" in resubmitted.stdout
    row = await probe.delivery(name)
    assert (row["status"], row["attempts"]) == ("pending", 0)
