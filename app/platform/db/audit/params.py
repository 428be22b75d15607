"""Parameters to EXPLAIN a statement with: the app's sample, or rebuilt from the tables' statistics.

``pg_stat_statements`` stores ``$n`` where the app passed a parameter or wrote a literal. The app's
SQL instrumentation keeps, for statements slower than ``APP_DB_SAMPLE_SLOW_MS``, the real text and
parameters (in the process that ran them); the live sessions' last statements
(``pg_stat_activity``) give the literals too. Failing both, each ``$n`` is given a value from
``pg_stats`` of the column it is compared with: the most common value for ``=``, a late histogram
bound for ``>``/``>=`` (a recent window), the last bound for ``<``/``<=``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.platform.db.audit.nodes import Node
from app.platform.observability.sql import normalize, samples

_COMPARED = r"(?P<col>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)?)\s*(?P<op>=|<>|!=|>=|<=|>|<)\s*"
_TABLES = re.compile(
    r"\b(?:FROM|JOIN)\s+(?P<table>[A-Za-z_][\w.]*)(?:\s+(?:AS\s+)?(?P<alias>(?!ON\b|WHERE\b|"
    r"LEFT\b|JOIN\b|INNER\b|CROSS\b|GROUP\b|ORDER\b|LIMIT\b|USING\b)[A-Za-z_]\w*))?",
    re.I,
)


@dataclass
class Bound:
    """A statement ready to EXPLAIN: its text and its parameters, and where they came from."""

    text: str
    args: tuple[Any, ...]
    source: str  # "sampled" | "session" | "reconstructed" | "none"


_BOOLEANS = re.compile(r"\b(?:true|false)\b", re.I)


def _loose(statement: str) -> str:
    """The shape, with the booleans ``pg_stat_statements`` also turns into ``$n``."""
    return _BOOLEANS.sub("?", normalize(statement)).lower()


def sampled(query: str) -> Bound | None:
    shape = _loose(query)
    found = next(
        (s for key, s in samples().items() if _BOOLEANS.sub("?", key).lower() == shape), None
    )
    if found is None:
        return None
    args = found.parameters
    if isinstance(args, list):  # executemany: the first row is as real as any
        args = args[0] if args else ()
    return Bound(found.statement, tuple(args or ()), "sampled")


async def from_sessions(node: Node, query: str) -> Bound | None:
    """A live session's last statement of the same shape: literals exact, parameters unknown."""
    shape = _loose(query)
    rows = await node.fetch(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    for row in rows:
        if row["query"] and _loose(row["query"]) == shape:
            return await reconstructed(node, row["query"], source="session")
    return None


def _tables(query: str) -> dict[str, str]:
    """alias (or bare name) -> table, from FROM and JOIN clauses."""
    found: dict[str, str] = {}
    for m in _TABLES.finditer(query):
        table = m.group("table")
        if table.lower() in ("lateral", "unnest", "select"):
            continue
        found[m.group("alias") or table.split(".")[-1]] = table
        found.setdefault(table.split(".")[-1], table)
    return found


def _context(query: str, n: int) -> tuple[str | None, str | None]:
    """(column, operator) the parameter ``$n`` is compared with, operator seen from the column."""
    param = r"\$\d+\b" if n < 0 else rf"\${n}\b"
    m = re.search(_COMPARED + rf"(?:CAST\()?{param}", query)
    if m:
        return m.group("col"), m.group("op")
    m = re.search(rf"{param}\s*(?P<op>=|>=|<=|>|<)\s*(?P<col>[A-Za-z_][\w.]*)", query)
    if m:
        flip = {">=": "<=", "<=": ">=", ">": "<", "<": ">"}
        return m.group("col"), flip.get(m.group("op"), m.group("op"))
    return None, None


_PICK = {
    "=": "COALESCE((s.most_common_vals::text::{t}[])[1], "
    "(s.histogram_bounds::text::{t}[])[array_length(s.histogram_bounds::text::{t}[], 1) / 2 + 1])",
    ">": "(s.histogram_bounds::text::{t}[])[greatest(1, (array_length("
    "s.histogram_bounds::text::{t}[], 1) * 9) / 10)]",
    "<": "(s.histogram_bounds::text::{t}[])[array_length(s.histogram_bounds::text::{t}[], 1)]",
}


async def _from_stats(node: Node, query: str, col: str, op: str, type_name: str) -> Any:
    alias, _, column = col.rpartition(".")
    tables = _tables(query)
    table = tables.get(alias) if alias else (next(iter(tables.values())) if tables else None)
    if table is None or not re.fullmatch(r"[\w.]+", type_name):
        return None
    pick = _PICK["=" if op in ("=", "<>", "!=") else (">" if op.startswith(">") else "<")]
    schema, _, name = table.rpartition(".")
    try:
        return await node.fetchval(
            f"SELECT {pick.format(t=type_name)} FROM pg_stats AS s "  # noqa: S608 - names checked
            "WHERE s.tablename = $1 AND s.attname = $2 AND s.schemaname = "
            "COALESCE(NULLIF($3, ''), current_schema())",
            name,
            column,
            schema,
        )
    except Exception:
        return None


async def _default(node: Node, query: str, n: int, type_name: str) -> Any:
    if re.search(rf"date_trunc\(\s*\${n}\b", query, re.I):
        return "day"
    if re.search(rf"date_trunc\([^,]+,[^,]+,\s*\${n}\b", query, re.I):
        return "UTC"
    if re.search(rf"\b(?:LIMIT|FETCH FIRST)\s+\${n}\b", query, re.I):
        return 20
    if re.search(rf"\bOFFSET\s+\${n}\b", query, re.I):
        return 0
    defaults = {
        "int2": 1,
        "int4": 1,
        "int8": 1,
        "numeric": 1,
        "float8": 1.0,
        "float4": 1.0,
        "text": "",
        "varchar": "",
        "bpchar": "",
        "bool": True,
        "jsonb": "{}",
        "json": "{}",
    }
    if type_name in defaults:
        return defaults[type_name]
    if type_name.startswith("_"):
        return []
    return await node.fetchval(f"SELECT CASE WHEN false THEN NULL::{type_name} END")


async def reconstructed(node: Node, query: str, source: str = "reconstructed") -> Bound:
    statement = await node.conn.prepare(query)
    types = [t.name for t in statement.get_parameters()]
    args: list[Any] = []
    for n, type_name in enumerate(types, start=1):
        col, op = _context(query, n)
        value = None
        if col is not None and op is not None:
            value = await _from_stats(node, query, col, op, type_name)
        if value is None:
            value = await _default(node, query, n, type_name)
        args.append(value)
    return Bound(query, tuple(args), source if types else "none")


async def bind(node: Node, query: str) -> Bound:
    """The best parameters known for ``query`` on ``node``."""
    return sampled(query) or await from_sessions(node, query) or await reconstructed(node, query)
