"""Health checks, each finding with its evidence and the SQL that fixes it.

Index usage is summed over the primary and every replica before an index is called unused: an
index that serves only replica reads shows zero scans on the primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.platform.db.audit.model import Finding
from app.platform.db.audit.nodes import Node

_INDEXES = """
SELECT s.nspname AS schema, t.relname AS table, c.relname AS index, i.indisunique AS uniq,
       i.indisprimary AS pk, i.indisvalid AS valid, i.indkey::int2[] AS keys,
       i.indnkeyatts AS nkeys, i.indclass::oid[] AS opclasses, am.amname AS method,
       coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS pred,
       coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS exprs,
       pg_relation_size(c.oid) AS bytes, pg_get_indexdef(c.oid) AS def,
       EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = c.oid) AS backs_constraint
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace s ON s.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE s.nspname NOT IN ('pg_catalog', 'information_schema') AND s.nspname NOT LIKE 'pg_toast%'
"""


@dataclass
class Thresholds:
    long_running_s: float = 300.0
    idle_in_transaction_s: float = 60.0
    lag_s: float = 30.0
    lag_bytes: int = 64 * 1024 * 1024
    cache_hit: float = 0.99
    sequence_used: float = 0.75
    bloat_ratio: float = 0.5
    bloat_min_bytes: int = 8 * 1024 * 1024
    seq_rows: int = 10_000


def _q(schema: str, name: str) -> str:
    return f'"{schema}"."{name}"'


async def index_findings(nodes: list[Node]) -> list[Finding]:
    primary = nodes[0]
    indexes = await primary.fetch(_INDEXES)
    scans: dict[tuple[str, str], dict[str, int]] = {}
    for node in nodes:
        for r in await node.fetch(
            "SELECT schemaname, indexrelname, idx_scan FROM pg_stat_user_indexes"
        ):
            scans.setdefault((r["schemaname"], r["indexrelname"]), {})[node.name] = int(
                r["idx_scan"]
            )
    found: list[Finding] = []
    for ix in indexes:
        name = _q(ix["schema"], ix["index"])
        per_node = scans.get((ix["schema"], ix["index"]), {})
        if not ix["valid"]:
            found.append(
                Finding(
                    "invalid_index",
                    name,
                    f"{name} is invalid (a failed concurrent build): "
                    "it costs every write and serves no read",
                    f"DROP INDEX CONCURRENTLY {name};  -- then build it again, or: REINDEX INDEX "
                    f"CONCURRENTLY {name};",
                    evidence={"definition": ix["def"]},
                )
            )
            continue
        if not (ix["uniq"] or ix["pk"] or ix["backs_constraint"]) and sum(per_node.values()) == 0:
            found.append(
                Finding(
                    "unused_index",
                    name,
                    f"{name} on {ix['table']} has not been scanned on any node",
                    f"DROP INDEX CONCURRENTLY {name};",
                    evidence={"scans": per_node, "bytes": ix["bytes"], "definition": ix["def"]},
                )
            )
    found += _duplicates(indexes)
    return found


def _duplicates(indexes: list[Any]) -> list[Finding]:
    """Identical indexes, and a non-unique one whose keys lead another with the same predicate."""
    found = []
    by_table: dict[tuple[str, str], list[Any]] = {}
    for ix in indexes:
        if ix["valid"]:
            by_table.setdefault((ix["schema"], ix["table"]), []).append(ix)
    for group in by_table.values():
        for a in group:
            for b in group:
                if a is b or (a["method"], a["pred"], a["exprs"]) != (
                    b["method"],
                    b["pred"],
                    b["exprs"],
                ):
                    continue
                ka, kb = list(a["keys"])[: a["nkeys"]], list(b["keys"])[: b["nkeys"]]
                same = ka == kb and list(a["keys"]) == list(b["keys"])
                keeps_b = b["uniq"] or b["pk"] or a["index"] > b["index"]
                if same and (a["uniq"] or a["pk"] or not keeps_b):
                    continue  # each identical pair once: drop the later name, keep a unique one
                lead = a["method"] == "btree" and len(ka) < len(kb) and kb[: len(ka)] == ka
                if not same and not (lead and not a["uniq"] and not a["pk"]):
                    continue
                check = "duplicate_index" if same else "overlapping_index"
                name = _q(a["schema"], a["index"])
                found.append(
                    Finding(
                        check,
                        name,
                        f"{name} {'duplicates' if same else 'is a prefix of'} "
                        f"{_q(b['schema'], b['index'])}",
                        f"DROP INDEX CONCURRENTLY {name};",
                        evidence={"index": a["def"], "covered_by": b["def"], "bytes": a["bytes"]},
                    )
                )
    return found


async def foreign_keys_without_index(primary: Node) -> list[Finding]:
    rows = await primary.fetch(
        """
        SELECT n.nspname AS schema, t.relname AS table, k.conname AS name,
               array_agg(a.attname ORDER BY x.n) AS cols, k.confrelid::regclass::text AS refs
        FROM pg_constraint k
        JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
        CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY AS x(attnum, n)
        JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum
        WHERE k.contype = 'f' AND NOT EXISTS (
            SELECT FROM pg_index i WHERE i.indrelid = k.conrelid AND i.indisvalid
            AND i.indpred IS NULL
            AND (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] @> k.conkey
            AND (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] <@ k.conkey)
        GROUP BY n.nspname, t.relname, k.conname, k.confrelid
        """
    )
    return [
        Finding(
            "fk_without_index",
            f"{_q(r['schema'], r['table'])}.{r['name']}",
            f"foreign key {r['name']} ({', '.join(r['cols'])}) -> {r['refs']} has no index: "
            "a delete or key update on the referenced table scans this one",
            f"CREATE INDEX CONCURRENTLY ON {_q(r['schema'], r['table'])} "
            f"({', '.join(chr(34) + c + chr(34) for c in r['cols'])});",
            evidence={"columns": list(r["cols"]), "references": r["refs"]},
        )
        for r in rows
    ]


async def seq_scan_tables(nodes: list[Node], t: Thresholds) -> list[Finding]:
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for node in nodes:
        for r in await node.fetch(
            "SELECT schemaname, relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS "
            "idx_scan, "
            "n_live_tup FROM pg_stat_user_tables"
        ):
            row = totals.setdefault(
                (r["schemaname"], r["relname"]),
                {"seq_scan": 0, "seq_tup_read": 0, "idx_scan": 0, "rows": 0, "nodes": {}},
            )
            row["seq_scan"] += r["seq_scan"]
            row["seq_tup_read"] += r["seq_tup_read"]
            row["idx_scan"] += r["idx_scan"]
            row["rows"] = max(row["rows"], r["n_live_tup"])
            row["nodes"][node.name] = {"seq_scan": r["seq_scan"], "idx_scan": r["idx_scan"]}
    found = []
    for (schema, table), row in totals.items():
        if (
            row["rows"] >= t.seq_rows
            and row["seq_scan"] > row["idx_scan"]
            and row["seq_tup_read"] >= 10 * row["rows"]
        ):
            name = _q(schema, table)
            found.append(
                Finding(
                    "seq_scan_dominated",
                    name,
                    f"{name} ({row['rows']:,} rows) is read by sequential scans more than by "
                    "index scans",
                    f"-- see the index advice for the statements reading {name}; then: ANALYZE "
                    f"{name};",
                    evidence=row,
                )
            )
    return found
