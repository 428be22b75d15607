"""The audit's report as a terminal table (rich), JSON and Markdown; comparing it to a baseline."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from app.platform.db.audit.model import Advice, Report


def _short(query: str, width: int = 90) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _advice_dict(a: Advice) -> dict[str, Any]:
    return {
        **asdict(a),
        "key": a.key,
        "cost_drop": a.cost_drop,
        "speedup": a.speedup,
        "saved_ms": a.saved_ms,
    }


def to_dict(report: Report) -> dict[str, Any]:
    return {
        "database": report.database,
        "nodes": report.nodes,
        "top": {n: [asdict(s) for s in top] for n, top in report.top.items()},
        "plans": [asdict(p) for p in report.plans],
        "advice": [_advice_dict(a) for a in report.advice],
        "rejected": [_advice_dict(a) for a in report.rejected],
        "findings": [{**asdict(f), "key": f.key} for f in report.findings],
        "notes": report.notes,
        "keys": sorted(report.keys()),
    }


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, default=str)


def _measured(a: Advice) -> str:
    if a.before is None or a.after is None:
        return f"cost -{a.cost_drop:.0%} (HypoPG)"
    return (
        f"p50 {a.before.p50_ms:.2f} -> {a.after.p50_ms:.2f} ms ({a.speedup or 0:.1f}x), "
        f"buffers {a.before.buffers} -> {a.after.buffers}; cost -{a.cost_drop:.0%}"
    )


def _write(a: Advice) -> str:
    w = a.write_cost
    size = f"~{a.estimated_size_bytes / 2**20:.1f} MiB, " if a.estimated_size_bytes else ""
    return (
        f"{size}{w.get('inserts_per_s', 0)} ins/s, {w.get('updates_per_s', 0)} upd/s; "
        f"{w.get('hot_note', '')}"
    )


def render(report: Report, console: Console) -> None:
    for node, top in report.top.items():
        table = Table(title=f"Top statements on {node} ({report.database})")
        for col in (
            "#",
            "total ms",
            "calls",
            "mean",
            "max",
            "rows",
            "hit",
            "read",
            "share",
            "module / route",
            "statement",
        ):
            table.add_column(col, overflow="fold")
        for i, s in enumerate(top, 1):
            table.add_row(
                str(i),
                f"{s.total_ms:,.1f}",
                f"{s.calls:,}",
                f"{s.mean_ms:.2f}",
                f"{s.max_ms:.2f}",
                f"{s.rows:,}",
                f"{s.shared_hit:,}",
                f"{s.shared_read:,}",
                f"{s.share:.1%}",
                f"{s.module or '?'} {s.route or ''}",
                _short(s.query, 60),
            )
        console.print(table)
    for title, items in (
        ("Index advice (ranked by time saved)", report.advice),
        ("Rejected advice", report.rejected),
    ):
        table = Table(title=title)
        for col in ("status", "index", "calls", "evidence", "write cost", "why"):
            table.add_column(col, overflow="fold")
        for a in items:
            table.add_row(a.status, a.definition, f"{a.calls:,}", _measured(a), _write(a), a.reason)
        console.print(table)
    table = Table(title="Health checks")
    for col in ("check", "subject", "finding", "fix"):
        table.add_column(col, overflow="fold")
    for f in report.findings:
        table.add_row(f.check, f.subject, f.message, f.fix_sql)
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")


def to_markdown(report: Report) -> str:
    out = [f"# Database audit: {report.database}", "", f"Nodes: {', '.join(report.nodes)}", ""]
    for node, top in report.top.items():
        out += [
            f"## Top statements on {node}",
            "",
            "| # | total ms | calls | mean ms | max ms | rows | hit | read | share | module | "
            "route | statement |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, s in enumerate(top, 1):
            stmt = _short(s.query, 120).replace("|", "\\|")
            out.append(
                f"| {i} | {s.total_ms:,.1f} | {s.calls:,} | {s.mean_ms:.2f} | {s.max_ms:.2f} | "
                f"{s.rows:,} | "
                f"{s.shared_hit:,} | {s.shared_read:,} | {s.share:.1%} | {s.module or ''} | "
                f"{s.route or ''} | `{stmt}` |"
            )
        out.append("")
    for title, items in (("Index advice", report.advice), ("Rejected advice", report.rejected)):
        out += [f"## {title}", ""]
        for a in items:
            out += [
                f"- **{a.status}** `{a.definition}` ({a.calls:,} calls): {_measured(a)}. Write "
                f"cost: {_write(a)}. {a.reason}".rstrip()
            ]
        out += [""] if items else ["None.", ""]
    out += ["## Health checks", ""]
    for f in report.findings:
        out += [f"- **{f.check}** {f.subject}: {f.message}", f"  ```sql\n  {f.fix_sql}\n  ```"]
    out += ["", *[f"> {n}" for n in report.notes]]
    return "\n".join(out) + "\n"


def new_since(report: Report, baseline_file: Path) -> list[str]:
    """The findings and advice of ``report`` that the stored baseline does not have."""
    stored = json.loads(baseline_file.read_text(encoding="utf-8"))
    known = set(stored.get("keys", []))
    return sorted(report.keys() - known)
