"""The top statements of one node from ``pg_stat_statements``, with the app's module and route.

The app tags its SQL with ``/*module='..',route='..'*/`` (app/platform/observability/sql.py).
``pg_stat_statements`` keeps the text of a statement's first execution, so a statement shared by
several routes is attributed to the first of them it saw.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from app.platform.db.audit.model import Statement
from app.platform.db.audit.nodes import TAG, Node

_APP_TAG = re.compile(r"/\*module='([^']*)',route='([^']*)'\*/")
_FIRST_WORD = re.compile(r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*(\w+)", re.S)
_COUNTED = {"select", "insert", "update", "delete", "with", "values", "table"}
_SYSTEM = re.compile(r"\b(?:pg_catalog|information_schema)\.|\balembic_version\b", re.I)

TOP_SQL = """
SELECT s.queryid, s.query, s.calls, s.total_exec_time, s.mean_exec_time, s.max_exec_time,
       s.rows, s.shared_blks_hit, s.shared_blks_read
FROM pg_stat_statements AS s
JOIN pg_database AS d ON d.oid = s.dbid
WHERE d.datname = current_database() AND s.toplevel
ORDER BY s.total_exec_time DESC
LIMIT 2000
"""


def attribution(query: str) -> tuple[str | None, str | None]:
    found = _APP_TAG.search(query)
    if found is None:
        return None, None
    return unquote(found.group(1)), unquote(found.group(2)) or None


def excluded(query: str) -> str | None:
    """Why a statement is left out (seed, migration, the audit itself, utility), or None."""
    if TAG.strip() in query:
        return "audit"
    word = _FIRST_WORD.match(query)
    if word is None or word.group(1).lower() not in _COUNTED:
        return "utility"  # COPY, DDL, ANALYZE, SET, transaction control: seed and migrations
    if _SYSTEM.search(query):
        return "catalog"  # migrations' and tools' introspection
    return None


async def top_statements(node: Node, limit: int) -> list[Statement]:
    rows = await node.fetch(TOP_SQL)
    kept = [r for r in rows if excluded(r["query"]) is None]
    total = sum(r["total_exec_time"] for r in kept) or 1.0
    top = []
    for r in kept[:limit]:
        module, route = attribution(r["query"])
        top.append(
            Statement(
                node=node.name,
                queryid=int(r["queryid"]),
                query=r["query"],
                calls=int(r["calls"]),
                total_ms=float(r["total_exec_time"]),
                mean_ms=float(r["mean_exec_time"]),
                max_ms=float(r["max_exec_time"]),
                rows=int(r["rows"]),
                shared_hit=int(r["shared_blks_hit"]),
                shared_read=int(r["shared_blks_read"]),
                share=float(r["total_exec_time"]) / total,
                module=module,
                route=route,
            )
        )
    return top


async def reset(nodes: list[Node]) -> None:
    """Forget the statistics of this database on every node (the monitoring role may)."""
    for node in nodes:
        await node.execute(
            "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
            "WHERE datname = current_database()), 0)"
        )
