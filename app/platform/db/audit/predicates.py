"""Index candidates from a plan: the predicates, joins and sort each scanned table is read with.

Column order follows the rule an index can serve: equality columns first, then one range column,
then the sort; a predicate against a constant the statement writes literally (``type = 'x'``)
becomes the WHERE of a partial index; columns the scan outputs besides become INCLUDE columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from app.platform.db.audit.plans import walk

_SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"}
_ATOM = re.compile(
    r"^\(?(?P<lhs>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\)?(?:::[\w ]+(?:\[\])?)?\s*"
    r"(?P<op>= ANY|=|>=|<=|>|<)\s*(?P<rhs>.+)$"
)
_NULL = re.compile(r"^\(?(?P<lhs>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\)?\s+IS\s+(?P<not>NOT\s+)?NULL$")
_COLREF = re.compile(r"^\(?(?P<alias>[A-Za-z_]\w*)\.(?P<col>[A-Za-z_]\w*)\)?(?:::[\w ]+)?$")
_CAST = re.compile(r"::[\w ]+(?:\[\])?$")
_MAX_INCLUDE = 4
_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)


@dataclass
class Access:
    """How one scan reads one table: what the index would have to serve."""

    schema: str
    table: str
    alias: str
    equality: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    sort: list[str] = field(default_factory=list)
    constants: list[tuple[str, str]] = field(default_factory=list)  # (column, predicate SQL)
    output: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    schema: str
    table: str
    columns: tuple[str, ...]
    include: tuple[str, ...] = ()
    where: str | None = None

    def definition(self, name: str | None = None, concurrently: bool = False) -> str:
        cols = ", ".join(f'"{c}"' for c in self.columns)
        head = "CREATE INDEX CONCURRENTLY" if concurrently else "CREATE INDEX"
        named = f' "{name}"' if name else ""
        sql = f'{head}{named} ON "{self.schema}"."{self.table}" ({cols})'
        if self.include:
            sql += f" INCLUDE ({', '.join(chr(34) + c + chr(34) for c in self.include)})"
        if self.where:
            sql += f" WHERE {self.where}"
        return sql


def split_and(expr: str) -> list[str]:
    """The top-level conjuncts of a plan condition such as ``((a = 1) AND (b > 2))``."""
    expr = expr.strip()
    while expr.startswith("(") and _closing(expr, 0) == len(expr) - 1:
        expr = expr[1:-1].strip()
    parts, depth, start, i = [], 0, 0, 0
    while i < len(expr):
        ch = expr[i]
        if ch == "'":
            i = expr.index("'", i + 1) if "'" in expr[i + 1 :] else len(expr)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and expr.startswith(" AND ", i):
            parts.append(expr[start:i])
            start = i + 5
            i += 4
        elif depth == 0 and expr.startswith(" OR ", i):
            return []  # a disjunction: no single index serves it
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts if p.strip()]


def _closing(expr: str, at: int) -> int:
    depth, i = 0, at
    while i < len(expr):
        if expr[i] == "'":
            i = expr.index("'", i + 1) if "'" in expr[i + 1 :] else len(expr)
        elif expr[i] == "(":
            depth += 1
        elif expr[i] == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _own(ref: str, alias: str) -> str | None:
    """The column name when ``ref`` belongs to the scan's alias (or is unqualified)."""
    head, _, col = ref.rpartition(".")
    return col if head in ("", alias) else None


def _written_literally(text: str, column: str, literal: str) -> bool:
    value = _CAST.sub("", literal.strip()).strip()
    return bool(re.search(rf"\b{re.escape(column)}\b\s*=\s*{re.escape(value)}", text))


def _note_atom(access: Access, atom: str, text: str) -> None:
    atom = atom.strip()
    while atom.startswith("(") and _closing(atom, 0) == len(atom) - 1:
        atom = atom[1:-1].strip()
    null = _NULL.match(atom)
    if null and (col := _own(null.group("lhs"), access.alias)):
        access.constants.append((col, f"{col} IS {'NOT ' if null.group('not') else ''}NULL"))
        return
    m = _ATOM.match(atom)
    if m is None:
        return
    lhs, op, rhs = m.group("lhs"), m.group("op"), m.group("rhs").strip()
    col = _own(lhs, access.alias)
    ref = _COLREF.match(rhs)
    if col is None and ref and ref.group("alias") == access.alias:
        col, rhs, ref = ref.group("col"), lhs, None  # written the other way round
        op = {">": "<", "<": ">", ">=": "<=", "<=": ">="}.get(op, op)
    if col is None:
        return
    if op in ("=", "= ANY"):
        if ref is None and not rhs.startswith("$") and _written_literally(text, col, rhs):
            literal = _CAST.sub("", rhs).strip()
            access.constants.append((col, f"{col} = {literal}"))
        elif col not in access.equality:
            access.equality.append(col)
    elif col not in access.ranges:
        access.ranges.append(col)


_LITERAL = r"\s*=\s*('(?:[^']|'')*'|-?\d+(?![\w.]))"


def _literal_constants(access: Access, text: str) -> None:
    """Constants the statement writes for this table: a partial index that serves the scan
    implies them, and then the plan shows them in no condition at all."""
    found = re.findall(rf"\b{re.escape(access.alias)}\.(\w+){_LITERAL}", text)
    if not found and not re.search(r"\bJOIN\b|,\s*\w+\s+(?:AS\s+)?\w+\s+WHERE", text, re.I):
        found = re.findall(rf"(?<![\w.])(\w+){_LITERAL}", text)
    known = {col for col, _ in access.constants}
    for col, literal in found:
        if col not in known and col not in access.equality:
            access.constants.append((col, f"{col} = {literal}"))
            known.add(col)


def accesses(plan: dict[str, Any], text: str, only: dict[str, Any] | None = None) -> list[Access]:
    """Each table scan of the plan (or ``only`` that one) with its conditions, joins and sort.

    Walked from the top of the plan even for one scan: the joins and the sort above it are
    what make its candidate compound.
    """
    text = _COMMENTS.sub(" ", text)  # the module/route tag holds "module='x'": no predicate
    found = []
    for node, parents in walk(plan):
        if node.get("Node Type") not in _SCANS or "Relation Name" not in node:
            continue
        if only is not None and node is not only:
            continue
        alias = node.get("Alias", node["Relation Name"])
        access = Access(node.get("Schema", "public"), node["Relation Name"], alias)
        conditions = [node.get(k) for k in ("Filter", "Index Cond", "Recheck Cond")]
        conditions += [c.get("Index Cond") for c in node.get("Plans", [])]
        conditions += [
            p.get(k) for p in parents for k in ("Hash Cond", "Merge Cond", "Join Filter")
        ]
        for condition in filter(None, conditions):
            for atom in split_and(str(condition)):
                _note_atom(access, atom, text)
        for parent in reversed(parents):
            if parent.get("Node Type") in ("Sort", "Incremental Sort"):
                for key in parent.get("Sort Key", []):
                    ref = key.split(" ")[0]
                    col = _own(ref.strip("()"), alias)
                    if col and col not in access.sort:
                        access.sort.append(col)
                break
        _literal_constants(access, text)
        outputs = (_own(o.strip("()"), alias) for o in node.get("Output", []))
        access.output = [c for c in outputs if c and re.fullmatch(r"[A-Za-z_]\w*", c)]
        found.append(access)
    return found


def candidates(access: Access) -> list[Candidate]:
    """Partial first (the narrowest that serves), then constants as key columns, then covering."""
    key = list(access.equality)
    if access.ranges:
        key.append(access.ranges[0])
    key += [c for c in access.sort if c not in key]
    if not key and not access.constants:
        return []
    made: list[Candidate] = []
    where = " AND ".join(sorted(p for _, p in access.constants)) or None
    consts = [c for c, _ in access.constants if c not in key]
    if key:
        made.append(Candidate(access.schema, access.table, tuple(key), (), where))
    if consts:
        made.append(Candidate(access.schema, access.table, tuple(consts + key)))
    used = set(key) | {c for c, _ in access.constants}
    extra = tuple(dict.fromkeys(c for c in access.output if c not in used))
    if key and extra and len(extra) <= _MAX_INCLUDE:
        made.append(Candidate(access.schema, access.table, tuple(key), extra, where))
    return made
