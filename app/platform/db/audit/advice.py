"""Index advice, proven: each candidate costed with HypoPG, then (``--verify``) built and timed.

HypoPG 1.3.1 (Debian's ``postgresql-15-hypopg``) has no ``hypopg_hide_index``, and PostgreSQL 15 no
``EXPLAIN (GENERIC_PLAN)``: a candidate is costed with the statement's own parameters, as a custom
plan. ``--verify`` builds it with ``CREATE INDEX CONCURRENTLY``, re-runs the statement N times
before and after, and keeps the index only with ``--apply``.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

from app.platform.db.audit.model import Advice, Statement
from app.platform.db.audit.nodes import Node
from app.platform.db.audit.params import Bound
from app.platform.db.audit.plans import LARGE_TABLE_ROWS, Explained, measure, run_explain, walk
from app.platform.db.audit.predicates import Candidate, accesses, candidates


@dataclass
class Options:
    verify: bool = False
    apply: bool = False
    runs: int = 7
    min_cost_drop: float = 0.5  # what HypoPG must promise for a candidate to be timed at all
    min_speedup: float = 2.0  # what timing must show for advice to stand
    timeout_ms: int = 60_000
    # Smaller tables are left alone: a sequential scan of them costs little whatever the index.
    large_table_rows: int = LARGE_TABLE_ROWS


def _needs_help(node: dict[str, Any]) -> bool:
    """A scan that reads far more than it returns: a seq scan, or an index scan that filters."""
    if node.get("Node Type") == "Seq Scan":
        return True
    loops = float(node.get("Actual Loops", 1) or 1)
    removed = float(node.get("Rows Removed by Filter", 0)) * loops
    return removed >= 1000 and removed > 10 * float(node.get("Actual Rows", 0)) * loops


def _uses(plan: dict[str, Any], index_name: str) -> bool:
    return any(n.get("Index Name") == index_name for n, _ in walk(plan))


async def _existing(node: Node, schema: str, table: str) -> set[tuple[tuple[str, ...], str | None]]:
    rows = await node.fetch(
        "SELECT array_agg(a.attname ORDER BY k.n) AS cols, pg_get_expr(i.indpred, i.indrelid) AS "
        "pred "
        "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
        "JOIN pg_namespace s ON s.oid = t.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
        "WHERE s.nspname = $1 AND t.relname = $2 AND i.indisvalid AND k.n <= i.indnkeyatts "
        "GROUP BY i.indexrelid, i.indpred, i.indrelid",
        schema,
        table,
    )
    return {(tuple(r["cols"]), r["pred"]) for r in rows}


async def _hypothetical_cost(
    node: Node, bound: Bound, candidate: Candidate
) -> tuple[float, bool, int]:
    """(planned cost, whether the plan uses it, estimated size) with ``candidate`` hypothetical."""
    row = (await node.fetch("SELECT * FROM hypopg_create_index($1)", candidate.definition()))[0]
    try:
        found = await run_explain(node, bound, analyze=False, timeout_ms=30_000)
        size = await node.fetchval("SELECT hypopg_relation_size($1)", row["indexrelid"])
        return found.cost, _uses(found.plan, row["indexname"]), int(size or 0)
    finally:
        await node.execute("SELECT hypopg_reset()")


async def _write_cost(primary: Node, schema: str, table: str, columns: list[str]) -> dict[str, Any]:
    row = (
        await primary.fetch(
            "SELECT t.n_tup_ins, t.n_tup_upd, t.n_tup_hot_upd, t.n_tup_del, "
            "extract(epoch FROM now() - coalesce(d.stats_reset, pg_postmaster_start_time())) AS "
            "secs "
            "FROM pg_stat_user_tables t, pg_stat_database d "
            "WHERE t.schemaname = $1 AND t.relname = $2 AND d.datname = current_database()",
            schema,
            table,
        )
    )[0]
    secs = max(1.0, float(row["secs"]))
    return {
        "inserts_per_s": round(row["n_tup_ins"] / secs, 3),
        "updates_per_s": round(row["n_tup_upd"] / secs, 3),
        "deletes_per_s": round(row["n_tup_del"] / secs, 3),
        "hot_updates": int(row["n_tup_hot_upd"]),
        "updates": int(row["n_tup_upd"]),
        "hot_note": (
            f"updates that change {', '.join(columns)} stop being HOT "
            f"({row['n_tup_hot_upd']} of {row['n_tup_upd']} updates were HOT so far)"
        ),
    }


def _index_name(candidate: Candidate) -> str:
    digest = hashlib.sha1(candidate.definition().encode(), usedforsecurity=False).hexdigest()[:6]
    return f"ix_audit_{candidate.table}_{'_'.join(candidate.columns)}"[:52] + f"_{digest}"


async def advise(
    node: Node,
    primary: Node,
    stmt: Statement,
    bound: Bound,
    found: Explained,
    sizes: dict[str, float],
    options: Options,
    hypopg: bool,
) -> list[Advice]:
    """The best candidate for each table the statement scans badly, with its evidence."""
    advice = []
    for node_plan, _ in walk(found.plan):
        table = node_plan.get("Relation Name")
        if not table or sizes.get(table, 0) < options.large_table_rows:
            continue
        if not _needs_help(node_plan):
            continue
        for access in accesses(found.plan, bound.text, only=node_plan):
            existing = await _existing(node, access.schema, access.table)
            made = [c for c in candidates(access) if (c.columns, c.where) not in existing]
            if not made:
                continue
            best = await _best(node, bound, found, made) if hypopg else (made[0], None, 0)
            if best is None:
                continue
            candidate, cost_after, size = best
            advice.append(
                Advice(
                    node=node.name,
                    queryid=stmt.queryid,
                    table=access.table,
                    columns=list(candidate.columns),
                    include=list(candidate.include),
                    where=candidate.where,
                    definition=candidate.definition(concurrently=True) + ";",
                    calls=stmt.calls,
                    cost_before=found.cost,
                    cost_after=cost_after if cost_after is not None else found.cost,
                    status="hypothetical" if hypopg else "unchecked",
                    reason="" if hypopg else "HypoPG is not installed in this database",
                    estimated_size_bytes=size or None,
                    write_cost=await _write_cost(
                        primary, access.schema, access.table, list(candidate.columns)
                    ),
                )
            )
    if options.verify:
        for item in advice:
            if item.status == "hypothetical":
                await verify(node, primary, bound, item, options)
    return advice


async def _best(
    node: Node, bound: Bound, found: Explained, made: list[Candidate]
) -> tuple[Candidate, float, int] | None:
    """The first candidate (narrowest first) that saves 95% of what the best one saves.

    A wider index (INCLUDE columns, a constant as a key column) costs every write and its size:
    it must earn that, as a covering index does when heap fetches dominate, not when a LIMIT 20
    makes them 20 page reads.
    """
    costed = []
    for candidate in made:
        cost, used, size = await _hypothetical_cost(node, bound, candidate)
        if used:
            costed.append((candidate, cost, size))
    if not costed:
        return None
    best_saving = found.cost - min(cost for _, cost, _ in costed)
    return next(c for c in costed if found.cost - c[1] >= 0.95 * best_saving)


async def _wait_visible(node: Node, name: str, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    sql = (
        "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
        "WHERE c.relname = $1"
    )
    while not await node.fetchval(sql, name):
        if loop.time() > deadline:
            raise TimeoutError(f"index {name} did not reach {node.name} within {timeout:.0f}s")
        await asyncio.sleep(0.1)


async def verify(node: Node, primary: Node, bound: Bound, item: Advice, options: Options) -> None:
    """Build the index for real, time the statement before and after, drop it unless --apply."""
    schema = await primary.fetchval(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = $1 AND c.relkind IN ('r', 'p') ORDER BY n.nspname = 'public' DESC "
        "LIMIT 1",
        item.table,
    )
    candidate = Candidate(
        schema or "public", item.table, tuple(item.columns), tuple(item.include), item.where
    )
    name = _index_name(candidate)
    item.before = await measure(node, bound, options.runs, options.timeout_ms)
    keep = False
    try:
        # Inside the try: a build that fails half-way leaves an invalid index to drop.
        await primary.execute(candidate.definition(name, concurrently=True))
        await _wait_visible(node, name)
        item.after = await measure(node, bound, options.runs, options.timeout_ms)
        speedup = item.speedup or 0.0
        if speedup >= options.min_speedup:
            item.status = "applied" if options.apply else "verified"
            keep = options.apply
            item.definition = candidate.definition(name, concurrently=True) + ";"
        else:
            item.status = "rejected"
            item.reason = (
                f"HypoPG promised {item.cost_drop:.0%} less cost, but the measured p50 went "
                f"{item.before.p50_ms:.3f} -> {item.after.p50_ms:.3f} ms ({speedup:.2f}x, "
                f"below {options.min_speedup:g}x); buffers {item.before.buffers} -> "
                f"{item.after.buffers}"
            )
    finally:
        if not keep:
            await primary.execute(
                f'DROP INDEX CONCURRENTLY IF EXISTS "{candidate.schema}"."{name}"'
            )
