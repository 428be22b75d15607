"""Outbox benchmark: commit-to-listener latency when idle, deliveries per second under load.

    make bench-events            (or: .venv/bin/python -m bench.events [--events N])

Starts a throwaway PostgreSQL primary (tools/pgstack.py, fsync off like the test stack), migrates
it, then measures:

1. latency: one dispatcher waiting idle; events published one at a time; the time from the
   publisher's COMMIT returning to the listener being called (p50, p99);
2. throughput: a backlog of N events released at once to 1 and then 4 dispatcher processes
   (each ``--concurrency`` deliveries in flight); deliveries per second until all are done.

Throughput is measured with a listener that does no database work (the machinery alone: claim,
decode, call, mark done) and with one that inserts a row through the delivery's session (the
row and the done mark commit together), each with deliveries run in lanes (a claimed batch in
one transaction, a savepoint each: the default) and with a transaction per delivery
(``batch_size=1``, the previous design), side by side in one run. Figures vary with the machine
and its load; compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.platform.config import Settings
from app.platform.events import Delivery, Event, ListenerRegistry, publish
from app.platform.events.dispatcher import Dispatcher
from app.platform.events.policy import DeliveryPolicy

ROOT = Path(__file__).resolve().parent.parent


class BenchTick(Event):
    name: ClassVar[str] = "bench.tick"
    version: ClassVar[int] = 1

    seq: int


def _settings(url: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, env="test", database_url=url, replica_database_url=None, log_level="WARNING"
    )


async def _noop(event: BenchTick, delivery: Delivery) -> None:
    return None


_INSERT = text("INSERT INTO bench_effect (delivery_id, seq) VALUES (:d, :s)")


async def _write(event: BenchTick, delivery: Delivery) -> None:
    """A listener with a database side effect, committed with its delivery."""
    await delivery.session.execute(_INSERT, {"d": delivery.id, "s": event.seq})


def _registry(listener: str, kind: str = "noop") -> ListenerRegistry:
    registry = ListenerRegistry()
    registry.subscribe(BenchTick, _write if kind == "write" else _noop, name=listener)
    return registry


async def latency(url: str, samples: int) -> list[float]:
    listener = f"bench.latency_{uuid.uuid4().hex[:6]}"
    received: dict[int, float] = {}
    arrived = asyncio.Event()

    async def handle(event: BenchTick, delivery: Delivery) -> None:
        received[event.seq] = time.perf_counter()
        arrived.set()

    registry = ListenerRegistry()
    registry.subscribe(BenchTick, handle, name=listener)
    settings = _settings(url)
    dispatcher = Dispatcher(
        settings, registry, policy=DeliveryPolicy(concurrency=16, poll_interval_seconds=5.0)
    )
    task = asyncio.create_task(dispatcher.run())
    await asyncio.wait_for(dispatcher.listening.wait(), 10)
    engine = create_async_engine(url)
    results = []
    try:
        for seq in range(samples):
            await asyncio.sleep(0.02)  # idle between events
            arrived.clear()
            async with AsyncSession(engine) as session:
                await publish(session, BenchTick(seq=seq), registry=registry)
                await session.commit()
            committed = time.perf_counter()
            await asyncio.wait_for(arrived.wait(), 10)
            results.append(received[seq] - committed)
    finally:
        dispatcher.stop()
        await task
        await engine.dispose()
    return results


async def _backlog(engine: AsyncEngine, registry: ListenerRegistry, count: int) -> None:
    for start in range(0, count, 1000):
        async with AsyncSession(engine) as session:
            for seq in range(start, min(count, start + 1000)):
                await publish(session, BenchTick(seq=seq), registry=registry)
            # Held back until every dispatcher is up, so the clock measures delivery alone.
            await session.execute(
                text(
                    "UPDATE platform_event_delivery SET available_at = now() + interval '1 day'"
                    " WHERE status = 'pending' AND listener = :l"
                ),
                {"l": registry.names()[0]},
            )
            await session.commit()


def _spawn(
    url: str, listener: str, concurrency: int, kind: str, batch: int
) -> subprocess.Popen[str]:
    args = ["dispatch", url, listener, str(concurrency), kind, str(batch)]
    return subprocess.Popen(
        [sys.executable, "-m", "bench.events", *args],
        cwd=ROOT,
        env={**os.environ, "APP_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        text=True,
    )


async def throughput(
    url: str, events: int, dispatchers: int, concurrency: int, kind: str, batch: int
) -> float:
    listener = f"bench.load_{uuid.uuid4().hex[:6]}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS bench_effect"
                " (delivery_id uuid PRIMARY KEY, seq int NOT NULL)"
            )
        )
    await _backlog(engine, _registry(listener), events)
    procs = [_spawn(url, listener, concurrency, kind, batch) for _ in range(dispatchers)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE platform_event_delivery SET available_at = now()"
                    " WHERE listener = :l AND status = 'pending'"
                ),
                {"l": listener},
            )
            await conn.execute(text("SELECT pg_notify('platform_outbox', '')"))
        started = time.perf_counter()
        while True:
            async with engine.connect() as conn:
                done = await conn.scalar(
                    text(
                        "SELECT count(*) FROM platform_event_delivery"
                        " WHERE listener = :l AND status = 'done'"
                    ),
                    {"l": listener},
                )
            if done == events:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        await engine.dispose()
    return events / elapsed


async def dispatch(url: str, listener: str, concurrency: int, kind: str, batch: int) -> None:
    """A dispatcher process for the throughput run; says "ready" once it listens."""
    import signal

    from app.platform.observability.logging import configure_logging

    configure_logging(_settings(url))  # logs to stderr: stdout carries "ready"
    dispatcher = Dispatcher(
        _settings(url),
        _registry(listener, kind),
        policy=DeliveryPolicy(concurrency=concurrency, batch_size=batch, poll_interval_seconds=0.5),
        name="bench",
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, dispatcher.stop)
    task = asyncio.create_task(dispatcher.run())
    await asyncio.wait_for(dispatcher.listening.wait(), 10)
    print("ready", flush=True)
    await task


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "dispatch":
        url, listener, concurrency, kind, batch = sys.argv[2:7]
        asyncio.run(dispatch(url, listener, int(concurrency), kind, int(batch)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="backlog per throughput run")
    parser.add_argument("--samples", type=int, default=300, help="latency samples")
    parser.add_argument("--concurrency", type=int, default=16, help="lanes per dispatcher")
    parser.add_argument("--batch", type=int, default=16, help="deliveries per lane transaction")
    args = parser.parse_args()

    from alembic import command

    from app.platform.db.migrations import alembic_config
    from app.platform.observability.logging import configure_logging
    from tools.pgstack import temporary_stack

    configure_logging(_settings("postgresql+asyncpg://x@127.0.0.1/x"))
    stack = temporary_stack()
    stack.start()
    try:
        command.upgrade(alembic_config(stack.primary_url), "head")
        lat = asyncio.run(latency(stack.primary_url, args.samples))
        p50, p99 = _pct(lat, 0.50) * 1000, _pct(lat, 0.99) * 1000
        print(f"commit-to-listener latency, idle ({len(lat)} events):")
        print(f"  p50 {p50:.1f} ms   p99 {p99:.1f} ms   mean {statistics.mean(lat) * 1000:.1f} ms")
        print(f"  target p50 < 50 ms: {'met' if p50 < 50 else 'MISSED'}")
        print(f"sustained deliveries ({args.events} events, {args.concurrency} lanes each):")
        modes = ((args.batch, f"lanes of {args.batch}"), (1, "a transaction per delivery"))
        for kind, what in (("noop", "no database work"), ("write", "one INSERT, same tx")):
            for n in (1, 4):
                rates = {}
                for batch, how in modes:
                    rates[batch] = asyncio.run(
                        throughput(stack.primary_url, args.events, n, args.concurrency, kind, batch)
                    )
                    verdict = "met" if rates[batch] >= 2000 else "MISSED"
                    print(
                        f"  {what}, {n} dispatcher(s), {how}: {rates[batch]:,.0f}/s"
                        f"   target >= 2,000/s: {verdict}"
                    )
                print(f"    lanes / per-delivery: {rates[args.batch] / rates[1]:.2f}x")
    finally:
        stack.clean()


if __name__ == "__main__":
    main()
