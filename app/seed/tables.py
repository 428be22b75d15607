"""One row generator per seeded table, and the COPY runner with its progress bar and rates.

A table is seeded only when it exists, so a module's table joins the seed by adding a
``TableSpec`` here (e.g. ``auth_user`` from ``world.users``, ``payments_product`` from
``world.products``, ``payments_order`` from ``world.orders``), in dependency order.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from app.seed.world import EventPools, World, event_day, event_pools

Record = tuple[Any, ...]


@dataclass(frozen=True)
class TableSpec:
    """A seeded table: its rows as records (binary COPY), or as COPY text chunks for the bulk."""

    name: str
    columns: tuple[str, ...]
    count: Callable[[World], int]
    rows: Callable[[World], Iterable[Record]] | None = None
    chunks: Callable[[World], AsyncIterator[tuple[bytes, int]]] | None = None


def analytics_signup_rows(world: World) -> Iterator[Record]:
    for u in world.users:
        verified = u.verified_at if u.verified_at and u.verified_at < world.end else None
        yield (u.id, u.signed_up_at, verified)


def analytics_checkout_rows(world: World) -> Iterator[Record]:
    for o in world.orders:
        yield (o.id, o.user_id, "paid" if o.paid else "failed", o.amount, o.currency, o.at)


_pools: EventPools | None = None


def _init_worker(pools: EventPools) -> None:
    global _pools
    _pools = pools


def _worker_day(day: int) -> bytes:
    assert _pools is not None
    return event_day(_pools, day)


async def analytics_event_chunks(world: World) -> AsyncIterator[tuple[bytes, int]]:
    """Days of events made by a process per core, handed to COPY in day order.

    Generating rows is the slow part in Python; in parallel processes it keeps up with the
    server, and this process only forwards bytes.
    """
    pools = event_pools(world)
    workers = max(1, os.cpu_count() or 1)
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(pools,)) as pool:
        ahead: deque[asyncio.Future[bytes]] = deque()
        days = iter(range(len(pools.quotas)))
        for day in islice(days, workers * 2):  # bounded read-ahead: memory stays flat
            ahead.append(loop.run_in_executor(pool, _worker_day, day))
        day_index = 0
        while ahead:
            chunk = await ahead.popleft()
            for day in islice(days, 1):
                ahead.append(loop.run_in_executor(pool, _worker_day, day))
            yield chunk, pools.quotas[day_index]
            day_index += 1


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "analytics_signup",
        ("user_id", "signed_up_at", "verified_at"),
        lambda w: len(w.users),
        rows=analytics_signup_rows,
    ),
    TableSpec(
        "analytics_checkout",
        ("order_id", "user_id", "outcome", "amount", "currency", "at"),
        lambda w: len(w.orders),
        rows=analytics_checkout_rows,
    ),
    TableSpec(
        "analytics_event",
        (
            "type",
            "occurred_at",
            "user_id",
            "anonymous_id",
            "name",
            "path",
            "search_id",
            "query",
            "result_count",
            "product_id",
            "position",
            "properties",
        ),
        lambda w: w.preset.events,
        chunks=analytics_event_chunks,
    ),
)


@dataclass
class Progress:
    """A one-line progress bar on stderr (no dependency: a carriage return and a few rewrites)."""

    label: str
    total: int
    done: int = 0
    started: float = field(default_factory=time.perf_counter)
    _last: float = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= 0.2 or self.done >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        rate = self.done / max(now - self.started, 1e-9)
        sys.stderr.write(
            f"\r{self.label:<20} [{bar:<30}] {share:6.1%} {self.done:>11,}/{self.total:,} "
            f"{rate:>10,.0f} rows/s"
        )
        sys.stderr.flush()

    def finish(self) -> float:
        elapsed = time.perf_counter() - self.started
        self._draw(time.perf_counter())
        sys.stderr.write("\n")
        return elapsed


async def _tracked(rows: Iterable[Record], progress: Progress) -> AsyncIterator[Record]:
    """Rows to COPY, counted; yielding often lets asyncpg send while the next ones are made."""
    batch = 0
    for row in rows:
        yield row
        batch += 1
        if batch == 5000:
            progress.advance(batch)
            batch = 0
    progress.advance(batch)


async def _tracked_chunks(
    chunks: AsyncIterator[tuple[bytes, int]], progress: Progress
) -> AsyncIterator[bytes]:
    async for chunk, rows in chunks:
        yield chunk
        progress.advance(rows)


@dataclass(frozen=True)
class TableResult:
    table: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


async def _secondary_indexes(conn: Any, table: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        """
        SELECT c.relname, pg_get_indexdef(i.indexrelid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = $1::regclass AND NOT i.indisprimary AND NOT i.indisunique
        """,
        table,
    )
    return [(r[0], r[1]) for r in rows]


async def _primary_key(conn: Any, table: str) -> tuple[str, str] | None:
    row = await conn.fetchrow(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype = 'p'",
        table,
    )
    return (row[0], row[1]) if row else None


async def copy_table(conn: Any, spec: TableSpec, world: World) -> TableResult:
    """COPY one table's rows in one statement (``conn``: an asyncpg connection, in a transaction).

    Into an empty table, the indexes (primary key included) are dropped first and rebuilt after,
    in the same transaction: one sorted build is several times cheaper than maintaining them row
    by row (the timing includes it).
    """
    progress = Progress(spec.name, spec.count(world))
    empty = not await conn.fetchval(f"SELECT EXISTS (SELECT FROM {spec.name})")  # noqa: S608
    deferred = await _secondary_indexes(conn, spec.name) if empty else []
    for name, _ in deferred:
        await conn.execute(f'DROP INDEX "{name}"')
    primary_key = await _primary_key(conn, spec.name) if empty else None
    if primary_key:
        await conn.execute(f'ALTER TABLE {spec.name} DROP CONSTRAINT "{primary_key[0]}"')
    if spec.chunks is not None:
        await conn.copy_to_table(
            spec.name,
            source=_tracked_chunks(spec.chunks(world), progress),
            columns=list(spec.columns),
            format="text",
        )
    elif spec.rows is not None:
        await conn.copy_records_to_table(
            spec.name, records=_tracked(spec.rows(world), progress), columns=list(spec.columns)
        )
    if deferred or primary_key:
        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
    if primary_key:
        name, definition = primary_key
        await conn.execute(f'ALTER TABLE {spec.name} ADD CONSTRAINT "{name}" {definition}')
    for _, definition in deferred:
        await conn.execute(definition)
    return TableResult(spec.name, progress.done, progress.finish())
