"""One audit run: connect to every node, read, explain, advise, check, and gather the report."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.platform.db.audit import health, node_health, statements
from app.platform.db.audit.advice import Options, advise
from app.platform.db.audit.model import Advice, PlanSummary, Report, Statement
from app.platform.db.audit.nodes import Node, close_all, connect_all
from app.platform.db.audit.params import bind
from app.platform.db.audit.plans import changes_data, run_explain, summarise


@dataclass
class AuditConfig:
    primary_url: str
    replica_urls: list[str] = field(default_factory=list)
    top: int = 20
    explain: int = 10  # how many of each node's top statements get EXPLAINed and advised on
    reset: bool = False
    advice: Options = field(default_factory=Options)
    thresholds: health.Thresholds = field(default_factory=health.Thresholds)


async def _sizes(node: Node) -> dict[str, float]:
    rows = await node.fetch(
        "SELECT relname, greatest(reltuples, 0) AS n FROM pg_class WHERE relkind IN ('r', 'p', 'm')"
    )
    return {r["relname"]: float(r["n"]) for r in rows}


async def _has_hypopg(node: Node) -> bool:
    return bool(await node.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'"))


async def _explain_and_advise(
    node: Node,
    primary: Node,
    stmt: Statement,
    cfg: AuditConfig,
    hypopg: bool,
    sizes: dict[str, float],
    report: Report,
) -> None:
    try:
        bound = await bind(node, stmt.query)
        writes = changes_data(bound.text)
        found = await run_explain(node, bound, analyze=not writes, timeout_ms=cfg.advice.timeout_ms)
    except Exception as exc:
        report.plans.append(
            PlanSummary(node.name, stmt.queryid, "none", False, None, error=str(exc))
        )
        return
    report.plans.append(summarise(node.name, stmt.queryid, bound, found, sizes))
    if writes:
        return  # a data-changing statement is explained, not re-run: no timing to prove advice with
    try:
        got = await advise(node, primary, stmt, bound, found, sizes, cfg.advice, hypopg)
    except Exception as exc:
        report.notes.append(f"{node.name} query {stmt.queryid}: no advice ({exc})")
        return
    for item in got:
        (report.rejected if item.status == "rejected" else report.advice).append(item)


def _dedupe(items: list[Advice]) -> list[Advice]:
    """One piece of advice per index definition: the one that saves the most."""
    best: dict[str, Advice] = {}
    for item in items:
        if item.key not in best or item.saved_ms > best[item.key].saved_ms:
            best[item.key] = item
    return sorted(best.values(), key=lambda a: (-a.saved_ms, -a.calls * a.cost_drop))


async def run_audit(cfg: AuditConfig) -> Report:
    nodes = await connect_all(cfg.primary_url, cfg.replica_urls)
    try:
        primary = nodes[0]
        database = await primary.fetchval("SELECT current_database()")
        report = Report(database, [n.name for n in nodes], {}, [], [], [], [])
        if cfg.reset:
            await statements.reset(nodes)
            report.notes.append("pg_stat_statements reset on every node for this database")
        hypopg = await _has_hypopg(primary)
        if not hypopg:
            report.notes.append(
                "HypoPG is not installed: index advice is unchecked (CREATE EXTENSION hypopg)"
            )
        for node in nodes:
            report.top[node.name] = await statements.top_statements(node, cfg.top)
            if cfg.reset:
                continue
            sizes = await _sizes(node)
            for stmt in report.top[node.name][: cfg.explain]:
                await _explain_and_advise(node, primary, stmt, cfg, hypopg, sizes, report)
        report.advice = _dedupe(report.advice)
        report.rejected = _dedupe(report.rejected)
        report.findings = await _health(nodes, cfg.thresholds)
        return report
    finally:
        await close_all(nodes)


async def _health(nodes: list[Node], t: health.Thresholds) -> list:  # type: ignore[type-arg]
    primary = nodes[0]
    found = await health.index_findings(nodes)
    found += await health.foreign_keys_without_index(primary)
    found += await health.seq_scan_tables(nodes, t)
    found += await node_health.bloat(primary, t)
    found += await node_health.sequences(primary, t)
    found += await node_health.replication(nodes, t)
    for node in nodes:
        found += await node_health.cache_hit(node, t)
        found += await node_health.sessions(node, t)
    return found
