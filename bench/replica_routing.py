"""How much of the primary's work replica routing takes away, measured over the API.

A read-heavy mix (90% reads) runs against a throwaway primary + streaming replica twice, side by
side: with routing off (every read on the primary) and on (reads on the replica, read-your-writes
by token and per-process memory). pg_stat_statements, reset before each run, counts the
statements each node executed; the figure is the primary's share.

    make bench-replica                       # defaults
    python -m bench.replica_routing --requests 4000 --users 16
    python -m bench.replica_routing --replicas 2   # reads spread over two replicas
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.platform.config import Settings
from app.platform.errors import NotFound
from app.platform.security import create_access_token
from app.platform.web.security import CurrentPrincipal
from app.platform.web.sessions import PrimarySession, ReadSession
from tools.pgstack import Stack, temporary_stack

metadata = MetaData()
notes = Table(
    "bench_note",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", Text, nullable=False, index=True),
    Column("body", Text, nullable=False),
)

_COUNT_SQL = """
SELECT coalesce(sum(calls), 0),
       coalesce(sum(calls) FILTER (WHERE query !~* '^\\s*(begin|commit|rollback)'), 0)
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = 'app' AND s.userid = 'app'::regrole
"""


class NoteIn(BaseModel):
    body: str


def bench_router() -> APIRouter:
    router = APIRouter(prefix="/bench/notes")

    @router.post("", status_code=201)
    async def create(note: NoteIn, session: PrimarySession, who: CurrentPrincipal) -> Any:
        new_id = await session.scalar(
            insert(notes).values(owner=str(who.user_id), body=note.body).returning(notes.c.id)
        )
        return {"id": new_id}

    @router.get("/{note_id}")
    async def read(note_id: int, session: ReadSession, who: CurrentPrincipal) -> Any:
        body = await session.scalar(select(notes.c.body).where(notes.c.id == note_id))
        if body is None:
            raise NotFound("no such note")
        return {"id": note_id, "body": body}

    @router.get("")
    async def mine(session: ReadSession, who: CurrentPrincipal) -> Any:
        rows = await session.execute(
            select(notes.c.id, notes.c.body)
            .where(notes.c.owner == str(who.user_id))
            .order_by(notes.c.id.desc())
            .limit(20)
        )
        return [{"id": r.id, "body": r.body} for r in rows]

    return router


@dataclass
class RunResult:
    label: str
    seconds: float
    latencies_ms: list[float]
    failures: int
    stale_own_reads: int
    primary: tuple[int, int] = (0, 0)
    replica: tuple[int, int] = (0, 0)
    per_replica: list[int] = field(default_factory=list)  # statements on each replica
    routes: dict[str, int] = field(default_factory=dict)

    def share(self, index: int) -> float:
        total = self.primary[index] + self.replica[index]
        return self.primary[index] / total if total else 0.0


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret


async def _user(
    client: httpx.AsyncClient,
    rng: random.Random,
    requests: int,
    write_share: float,
    result: RunResult,
    seed_ids: list[int],
) -> None:
    mine: list[tuple[int, str]] = []
    just_wrote: tuple[int, str] | None = None
    for i in range(requests):
        started = time.perf_counter()
        if rng.random() < write_share:
            body = f"note {i} {rng.random():.6f}"
            resp = await client.post("/bench/notes", json={"body": body})
            if resp.status_code == 201:
                just_wrote = (resp.json()["id"], body)
                mine.append(just_wrote)
        elif just_wrote is not None:
            # The read a user does right after writing: it must see the write.
            note_id, body = just_wrote
            resp = await client.get(f"/bench/notes/{note_id}")
            if resp.status_code != 200 or resp.json()["body"] != body:
                result.stale_own_reads += 1
            just_wrote = None
        elif rng.random() < 0.3:
            resp = await client.get("/bench/notes")
        else:
            note_id = rng.choice(seed_ids if not mine or rng.random() < 0.5 else [mine[-1][0]])
            resp = await client.get(f"/bench/notes/{note_id}")
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        if resp.status_code >= 400:
            result.failures += 1


def _counts(stack: Stack) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    def read(node: Any) -> tuple[int, int]:
        total, queries = node.psql(_COUNT_SQL, db="app").split("|")
        return int(total), int(queries)

    return read(stack.primary), [read(node) for node in stack.replicas]


_TOP_SQL = r"""
SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 90)
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = 'app' AND s.userid = 'app'::regrole
ORDER BY calls DESC LIMIT 8
"""


def _top(stack: Stack) -> str:
    lines = []
    for node in (stack.primary, *stack.replicas):
        lines.append(f"  {node.name}:")
        lines += [f"    {row}" for row in node.psql(_TOP_SQL, db="app").splitlines()]
    return "\n".join(lines)


def _route_counts() -> dict[str, int]:
    from prometheus_client import REGISTRY

    counts: dict[str, int] = {}
    for metric in REGISTRY.collect():
        if metric.name == "db_read_route":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    key = f"{sample.labels['target']}/{sample.labels['reason']}"
                    counts[key] = int(sample.value)
        elif metric.name == "db_replica_reads":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    counts[f"served by {sample.labels['replica']}"] = int(sample.value)
    return counts


async def run(
    stack: Stack, settings: Settings, label: str, args: argparse.Namespace, seed_ids: list[int]
) -> RunResult:
    app: FastAPI = create_app(settings)
    app.include_router(bench_router())
    result = RunResult(label=label, seconds=0.0, latencies_ms=[], failures=0, stale_own_reads=0)
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 15
        monitors = app.state.db.monitors
        while settings.db_replica_reads and not all(m.state.healthy for m in monitors):
            if time.monotonic() > deadline:
                raise SystemExit("the replica did not become healthy")
            await asyncio.sleep(0.1)
        transport = httpx.ASGITransport(app=app)
        clients = [
            httpx.AsyncClient(
                transport=transport,
                base_url="http://bench",
                headers={
                    "authorization": "Bearer "
                    + create_access_token(settings, uuid.uuid4(), ["member"])
                },
            )
            for _ in range(args.users)
        ]
        for node in (stack.primary, *stack.replicas):
            node.psql("SELECT pg_stat_statements_reset()", db="app")
        routes_before = _route_counts()
        started = time.perf_counter()
        per_user = args.requests // args.users
        await asyncio.gather(
            *(
                _user(c, _rng(args.seed + n), per_user, args.write_share, result, seed_ids)
                for n, c in enumerate(clients)
            )
        )
        result.seconds = time.perf_counter() - started
        result.primary, replicas = _counts(stack)
        result.replica = (sum(r[0] for r in replicas), sum(r[1] for r in replicas))
        result.per_replica = [r[0] for r in replicas]
        if args.show_statements:
            print(f"top statements, routing {label}:\n{_top(stack)}")
        after = _route_counts()
        result.routes = {
            k: v - routes_before.get(k, 0) for k, v in after.items() if v - routes_before.get(k, 0)
        }
        for c in clients:
            await c.aclose()
    return result


async def _prepare(stack: Stack) -> list[int]:
    engine = create_async_engine(stack.primary_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        rows = await conn.execute(
            insert(notes).returning(notes.c.id),
            [{"owner": "seed", "body": f"seed {i}"} for i in range(500)],
        )
        ids = [r[0] for r in rows]
    await engine.dispose()
    return ids


def _print(results: list[RunResult], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.requests} requests, {args.users} users, "
        f"{100 - args.write_share * 100:.0f}% reads, over the API (in-process ASGI)"
    )
    header = (
        f"{'routing':<8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'fail':>5} {'stale':>6} "
        f"{'primary':>8} {'replica':>8} {'primary share':>14} {'(excl. BEGIN/COMMIT)':>21}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        lat = sorted(r.latencies_ms)
        p95 = lat[int(len(lat) * 0.95) - 1] if lat else 0.0
        print(
            f"{r.label:<8} {len(lat) / r.seconds:>7.0f} {statistics.median(lat):>7.1f} "
            f"{p95:>7.1f} {r.failures:>5} {r.stale_own_reads:>6} {r.primary[0]:>8} "
            f"{r.replica[0]:>8} {r.share(0):>13.1%} {r.share(1):>21.1%}"
        )
    off, on = results
    if on.primary[0]:
        print()
        print(
            f"statements on the primary, routing on vs off: {on.primary[0]} vs {off.primary[0]} "
            f"({off.primary[0] / on.primary[0]:.1f}x fewer with routing on)"
        )
    for r in results:
        print(f"read routes ({r.label}): {dict(sorted(r.routes.items()))}")
    if len(on.per_replica) > 1:
        spread = ", ".join(f"{n}" for n in on.per_replica)
        print(f"statements on each replica, routing on: {spread}")


async def main_async(stack: Stack, args: argparse.Namespace) -> int:
    seed_ids = await _prepare(stack)
    await asyncio.sleep(1)  # let the replica replay the seed rows
    base = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        log_level="WARNING",
        database_url=stack.primary_url,  # type: ignore[arg-type]
        replica_database_urls=tuple(stack.replica_urls),  # type: ignore[arg-type]
    )
    results = []
    for label, on in (("off", False), ("on", True)):
        settings = base.model_copy(update={"db_replica_reads": on})
        results.append(await run(stack, settings, label, args, seed_ids))
    _print(results, args)
    return 0 if all(r.failures == 0 and r.stale_own_reads == 0 for r in results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--write-share", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--show-statements", action="store_true", help="the top statements")
    parser.add_argument("--replicas", type=int, default=1, help="streaming replicas to read from")
    args = parser.parse_args()
    from alembic import command

    from app.platform.db.migrations import alembic_config

    stack = temporary_stack(replicas=args.replicas)
    try:
        print(f"starting a throwaway primary + {args.replicas} replica(s) ...", file=sys.stderr)
        stack.start()
        # The throwaway stack turns synchronous_commit off for speed; production keeps it on,
        # which is what decides how soon a fresh write reaches the replica.
        stack.primary.psql("ALTER SYSTEM SET synchronous_commit = on")
        stack.primary.psql("SELECT pg_reload_conf()")
        command.upgrade(alembic_config(stack.primary_url), "head")
        return asyncio.run(main_async(stack, args))
    finally:
        stack.clean()


if __name__ == "__main__":
    sys.exit(main())
