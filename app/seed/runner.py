"""Seeding a database: check the targets, COPY every existing table, ANALYZE, report rates."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.engine import make_url

from app.seed.copy import TableResult, TableSpec, copy_table
from app.seed.tables import TABLES
from app.seed.world import Preset, World, build_world


class SeedError(RuntimeError):
    """The seed cannot run as asked; the message says why."""


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://``) as a plain libpq DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def default_end() -> datetime:
    """Start of today (UTC): the seeded period ends where "the last N days" reports look."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class SeedResult:
    world: World | None  # None: skipped, the database already had data (``if_empty``)
    tables: list[TableResult]
    skipped: list[str]


async def seed(
    database_url: str,
    preset: Preset,
    *,
    seed: int = 1,
    end: datetime | None = None,
    reset: bool = False,
    check_empty: bool = True,
    if_empty: bool = False,
    tables: tuple[TableSpec, ...] = TABLES,
) -> SeedResult:
    """Generate the world and COPY it; each table in its own transaction.

    ``if_empty``: when any seeded table already has rows, do nothing (``make run`` seeds a fresh
    database once and reuses it afterwards).
    """
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        present, skipped = [], []
        for spec in tables:
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", spec.name):
                present.append(spec)
            else:
                skipped.append(spec.name)
        filled = [
            spec.name
            for spec in present
            if await conn.fetchval(f"SELECT EXISTS (SELECT FROM {spec.name})")  # noqa: S608
        ]
        if reset and present:
            names = ", ".join(s.name for s in present)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        elif filled and if_empty:
            return SeedResult(None, [], skipped)
        elif filled and check_empty:
            raise SeedError(
                f"{filled[0]} already has rows; the seed's ids would collide. "
                "Run with --reset to empty the seeded tables first."
            )
        world = build_world(preset, seed, end or default_end())
        # Throwaway demo rows: not worth waiting for the WAL flush of every commit.
        await conn.execute("SET synchronous_commit = off")
        results = []
        for spec in present:
            async with conn.transaction():
                results.append(await copy_table(conn, spec, world))
        for spec in present:
            await conn.execute(f"ANALYZE {spec.name}")
        for name in skipped:
            print(f"{name:<20} skipped: the table does not exist yet", file=sys.stderr)
        return SeedResult(world, results, skipped)
    finally:
        await conn.close()
