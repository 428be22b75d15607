"""COPY into one table: index deferral, the progress bar on stderr, the rate, parallel chunks."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from app.seed.world import World

Record = tuple[Any, ...]
P = TypeVar("P")


@dataclass(frozen=True)
class TableSpec:
    """A seeded table: its rows as records (asyncpg encodes them), or as ready binary COPY chunks.

    ``chunks(world, first_id)`` yields (bytes, rows) and numbers the rows from ``first_id``; the
    table's identity sequence is moved past them afterwards.
    """

    name: str
    columns: tuple[str, ...]
    count: Callable[[World], int]
    rows: Callable[[World], Iterable[Record]] | None = None
    chunks: Callable[[World, int], AsyncIterator[tuple[bytes, int]]] | None = None


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


@dataclass(frozen=True)
class TableResult:
    table: str
    rows: int
    seconds: float  # the whole table: COPY, index rebuild, sequence
    copy_seconds: float  # the COPY alone

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def copy_rows_per_second(self) -> float:
        return self.rows / self.copy_seconds if self.copy_seconds else 0.0


def in_parallel(
    make: Callable[[P, int], bytes], pools: P, parts: int, *, header: bytes, trailer: bytes
) -> AsyncIterator[bytes]:
    """``make(pools, i)`` for i in range(parts), by one process per core, yielded in order.

    Generating rows is the slow part in Python; in parallel processes it keeps up with the
    server, and this process only forwards bytes. The read-ahead is bounded: memory stays flat.
    """

    async def run() -> AsyncIterator[bytes]:
        workers = max(1, os.cpu_count() or 1)
        loop = asyncio.get_running_loop()
        yield header
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(make, pools)) as pool:
            ahead: deque[asyncio.Future[bytes]] = deque()
            todo = iter(range(parts))
            for part in islice(todo, workers * 2):
                ahead.append(loop.run_in_executor(pool, _worker_part, part))
            while ahead:
                chunk = await ahead.popleft()
                for part in islice(todo, 1):
                    ahead.append(loop.run_in_executor(pool, _worker_part, part))
                yield chunk
        yield trailer

    return run()


_job: tuple[Callable[[Any, int], bytes], Any] | None = None


def _init_worker(make: Callable[[Any, int], bytes], pools: Any) -> None:
    global _job
    _job = (make, pools)


def _worker_part(part: int) -> bytes:
    assert _job is not None
    make, pools = _job
    return make(pools, part)


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
        "WHERE conrelid = $1::regclass AND contype = 'p' "
        # A primary key that a foreign key depends on stays (dropping it would need CASCADE).
        "AND NOT EXISTS (SELECT FROM pg_constraint f WHERE f.contype = 'f' "
        "AND f.confrelid = $1::regclass)",
        table,
    )
    return (row[0], row[1]) if row else None


async def _foreign_keys(conn: Any, table: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype = 'f'",
        table,
    )
    return [(r[0], r[1]) for r in rows]


async def copy_table(conn: Any, spec: TableSpec, world: World) -> TableResult:
    """COPY one table's rows in one statement (``conn``: an asyncpg connection, in a transaction).

    Into an empty table, its plain indexes (and a primary key nothing references) are dropped
    first and rebuilt after, in the same transaction: one sorted build is several times cheaper
    than maintaining them row by row (the timing includes it). Its foreign keys are dropped and
    added back too: adding one checks every row in one join instead of one lookup per row, and
    still refuses the load if a row points nowhere. Unique constraints stay as they are.
    """
    progress = Progress(spec.name, spec.count(world))
    empty = not await conn.fetchval(f"SELECT EXISTS (SELECT FROM {spec.name})")  # noqa: S608
    deferred = await _secondary_indexes(conn, spec.name) if empty else []
    for name, _ in deferred:
        await conn.execute(f'DROP INDEX "{name}"')
    primary_key = await _primary_key(conn, spec.name) if empty else None
    foreign_keys = await _foreign_keys(conn, spec.name) if empty else []
    for name, _ in [*foreign_keys, *([primary_key] if primary_key else [])]:
        await conn.execute(f'ALTER TABLE {spec.name} DROP CONSTRAINT "{name}"')
    if spec.chunks is not None:
        first_id = await conn.fetchval(f"SELECT coalesce(max(id), 0) + 1 FROM {spec.name}")  # noqa: S608
        await conn.copy_to_table(
            spec.name,
            source=_tracked_chunks(spec.chunks(world, first_id), progress),
            columns=list(spec.columns),
            format="binary",
        )
    elif spec.rows is not None:
        await conn.copy_records_to_table(
            spec.name, records=_tracked(spec.rows(world), progress), columns=list(spec.columns)
        )
    copied = time.perf_counter() - progress.started
    if deferred or primary_key:
        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
    if primary_key:
        name, definition = primary_key
        await conn.execute(f'ALTER TABLE {spec.name} ADD CONSTRAINT "{name}" {definition}')
    for _, definition in deferred:
        await conn.execute(definition)
    for name, definition in foreign_keys:
        await conn.execute(f'ALTER TABLE {spec.name} ADD CONSTRAINT "{name}" {definition}')
    if spec.chunks is not None:
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{spec.name}', 'id'), max(id)) "  # noqa: S608
            f"FROM {spec.name}"
        )
    return TableResult(spec.name, progress.done, progress.finish(), copied)
