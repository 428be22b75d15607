"""What the module/route SQL comment costs a statement, tagging off vs on, side by side.

Two figures, from interleaved rounds so that a noisy machine moves both alike:
- the instrumentation's before-statement hook alone, in nanoseconds a call (20 routes in turn);
- ``SELECT 1`` round trips through an instrumented engine on a throwaway primary, per second.

    make bench-sql-tag
    python -m bench.sql_tag --rounds 9 --calls 200000 --queries 3000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.platform.config import Settings
from app.platform.observability.context import ObservationScope, activate, deactivate
from app.platform.observability.sql import instrument_engine
from tools.pgstack import temporary_stack

ROUTES = [f"GET /v1/bench/{i}/{{item_id}}" for i in range(20)]
STATEMENT = "SELECT id, name, price FROM payments_product WHERE id = $1::UUID"


def _settings(url: str, tagging: bool) -> Settings:
    return Settings(_env_file=None, env="test", database_url=url, db_sql_comments=tagging)  # type: ignore[call-arg]


def _engine(url: str, tagging: bool) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=1)
    instrument_engine(engine, target="primary", settings=_settings(url, tagging))
    return engine


def _hook_ns(engine: AsyncEngine, calls: int) -> float:
    hooks = list(engine.sync_engine.dispatch.before_cursor_execute)
    scopes = [ObservationScope("payments", route) for route in ROUTES]
    started = time.perf_counter_ns()
    for i in range(calls):
        scope = scopes[i % len(scopes)]
        scope.shapes = None  # one statement per "request": no N+1 tally building up
        token = activate(scope)
        for hook in hooks:
            hook(None, None, STATEMENT, (), None, False)
        deactivate(token)
    return (time.perf_counter_ns() - started) / calls


async def _round_trips(engine: AsyncEngine, queries: int) -> float:
    scopes = [ObservationScope("payments", route) for route in ROUTES]
    async with engine.connect() as conn:
        started = time.perf_counter()
        for i in range(queries):
            scope = scopes[i % len(scopes)]
            scope.shapes = None
            token = activate(scope)
            await conn.execute(text("SELECT 1"))
            deactivate(token)
        return queries / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    stack = temporary_stack()
    stack.start()
    try:
        url = stack.primary_url
        engines = {tag: _engine(url, tag) for tag in (False, True)}
        hook: dict[bool, list[float]] = {False: [], True: []}
        rate: dict[bool, list[float]] = {False: [], True: []}
        for engine in engines.values():  # warm: connections, prepared statements, caches
            await _round_trips(engine, 200)
        for r in range(args.rounds):
            for tag in (False, True) if r % 2 == 0 else (True, False):
                hook[tag].append(_hook_ns(engines[tag], args.calls))
                rate[tag].append(await _round_trips(engines[tag], args.queries))
        off, on = statistics.median(hook[False]), statistics.median(hook[True])
        ratios = [b / a for a, b in zip(rate[False], rate[True], strict=True)]
        print(
            f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; {args.rounds} rounds"
        )
        print(f"hook: off {off:.0f} ns, on {on:.0f} ns a statement: +{on - off:.0f} ns")
        print(
            f"SELECT 1 round trips: off {statistics.median(rate[False]):,.0f}/s, "
            f"on {statistics.median(rate[True]):,.0f}/s; on/off median "
            f"{statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
        )
        for engine in engines.values():
            await engine.dispose()
    finally:
        stack.clean()


def _args(argv: Any = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=3_000)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(_args()))
