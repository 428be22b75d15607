"""EXPLAIN a statement with its parameters and summarise the plan: where the time goes.

Read-only statements run under ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``; data-changing ones are
explained without running them. Each run is inside a transaction that is rolled back, under the
audit's statement timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.platform.db.audit.model import Measurement, PlanSummary
from app.platform.db.audit.nodes import Node
from app.platform.db.audit.params import Bound

_DML = re.compile(
    r"^\s*(?:/\*.*?\*/\s*)*(?:insert|update|delete|merge)\b|\bwith\b.*\b(?:insert|"
    r"update|delete)\b",
    re.I | re.S,
)
LARGE_TABLE_ROWS = 10_000


def changes_data(query: str) -> bool:
    return bool(_DML.search(query))


@dataclass
class Explained:
    plan: dict[str, Any]  # the top "Plan" node
    planning_ms: float
    execution_ms: float | None

    @property
    def cost(self) -> float:
        return float(self.plan["Total Cost"])

    @property
    def buffers(self) -> int:
        return int(self.plan.get("Shared Hit Blocks", 0)) + int(
            self.plan.get("Shared Read Blocks", 0)
        )


async def run_explain(node: Node, bound: Bound, *, analyze: bool, timeout_ms: int) -> Explained:
    options = "ANALYZE, BUFFERS, VERBOSE, FORMAT JSON" if analyze else "VERBOSE, FORMAT JSON"
    transaction = node.conn.transaction()
    await transaction.start()
    try:
        await node.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        raw = await node.fetchval(f"EXPLAIN ({options}) {bound.text}", *bound.args)
    finally:
        # Rolled back even when it succeeds: an analysed statement leaves nothing behind.
        await transaction.rollback()
    found = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    return Explained(
        found["Plan"], float(found.get("Planning Time", 0.0)), found.get("Execution Time")
    )


async def measure(node: Node, bound: Bound, runs: int, timeout_ms: int) -> Measurement:
    """Re-run the statement ``runs`` times: the p50 of execution time and of shared buffers."""
    times, buffers = [], []
    for _ in range(runs):
        found = await run_explain(node, bound, analyze=True, timeout_ms=timeout_ms)
        times.append(float(found.execution_ms or 0.0))
        buffers.append(found.buffers)
    return Measurement(runs, _median(times), int(_median([float(b) for b in buffers])))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def walk(
    plan: dict[str, Any], parents: tuple[dict[str, Any], ...] = ()
) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], ...]]]:
    """Every node of a plan with its ancestors (nearest last)."""
    yield plan, parents
    for child in plan.get("Plans", []):
        yield from walk(child, (*parents, plan))


def _inclusive_ms(node: dict[str, Any]) -> float:
    return float(node.get("Actual Total Time", 0.0)) * float(node.get("Actual Loops", 1) or 1)


def summarise(
    node_name: str, queryid: int, bound: Bound, found: Explained, sizes: dict[str, float]
) -> PlanSummary:
    """The costliest node types, seq scans on large tables, misestimates and disk sorts."""
    analyzed = found.execution_ms is not None
    summary = PlanSummary(node_name, queryid, bound.source, analyzed, found.execution_ms)
    exclusive: dict[str, float] = {}
    for plan, _ in walk(found.plan):
        kind = plan["Node Type"]
        if analyzed:
            own = _inclusive_ms(plan) - sum(_inclusive_ms(c) for c in plan.get("Plans", []))
            exclusive[kind] = exclusive.get(kind, 0.0) + max(0.0, own)
        table = plan.get("Relation Name")
        if kind == "Seq Scan" and table and sizes.get(table, 0) >= LARGE_TABLE_ROWS:
            summary.seq_scans.append(
                {
                    "table": table,
                    "rows": sizes[table],
                    "filter": plan.get("Filter"),
                    "removed": plan.get("Rows Removed by Filter"),
                }
            )
        if analyzed:
            planned = float(plan.get("Plan Rows", 0))
            actual = float(plan.get("Actual Rows", 0))
            if max(planned, actual) >= 100 and max(planned, actual) > 10 * max(
                1.0, min(planned, actual)
            ):
                summary.misestimates.append(
                    {"node": kind, "table": table, "estimated": planned, "actual": actual}
                )
        if plan.get("Sort Space Type") == "Disk" or "external" in str(plan.get("Sort Method", "")):
            summary.disk_sorts.append(
                {"method": plan.get("Sort Method"), "kb": plan.get("Sort Space Used")}
            )
    summary.costliest = [
        {"node": kind, "ms": round(ms, 3)}
        for kind, ms in sorted(exclusive.items(), key=lambda kv: -kv[1])[:3]
    ]
    return summary
