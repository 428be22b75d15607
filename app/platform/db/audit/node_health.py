"""Per-node health checks: cache hit ratio, bloat, sequences, long sessions, replication lag."""

from __future__ import annotations

from app.platform.db.audit.health import Thresholds, _q
from app.platform.db.audit.model import Finding
from app.platform.db.audit.nodes import Node

# The classic estimate from the statistics (no pgstattuple needed): the pages the live rows need
# at the table's fillfactor, against the pages it has.
_BLOAT = """
SELECT n.nspname AS schema, c.relname AS table, c.relpages::bigint AS pages,
       ceil(c.reltuples * (24 + 4 + coalesce(w.width, 0)) /
            ((current_setting('block_size')::int - 24)
             * coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.reloptions) o
                         WHERE o LIKE 'fillfactor=%'), 100) / 100.0))::bigint AS expected,
       current_setting('block_size')::int AS block
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN (SELECT schemaname, tablename, sum(avg_width) AS width FROM pg_stats
           GROUP BY schemaname, tablename) w ON w.schemaname = n.nspname AND w.tablename = c.relname
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND c.reltuples > 0
"""

_SEQUENCES = """
SELECT s.schemaname, s.sequencename, s.last_value, s.max_value,
       (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_depend d
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.objid = (quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass
          AND d.deptype IN ('a', 'i') LIMIT 1) AS column_type,
       (SELECT d.refobjid::regclass::text || '.' || a.attname FROM pg_depend d
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.objid = (quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass
          AND d.deptype IN ('a', 'i') LIMIT 1) AS owner
FROM pg_sequences s WHERE s.last_value IS NOT NULL
"""
_TYPE_MAX = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}


async def cache_hit(node: Node, t: Thresholds) -> list[Finding]:
    row = (
        await node.fetch(
            "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
        )
    )[0]
    total = row["blks_hit"] + row["blks_read"]
    ratio = row["blks_hit"] / total if total else 1.0
    if total < 10_000 or ratio >= t.cache_hit:
        return []
    return [
        Finding(
            "cache_hit_ratio",
            node.name,
            f"{node.name}: {ratio:.2%} of block reads hit shared buffers (below {t.cache_hit:.0%})",
            "ALTER SYSTEM SET shared_buffers = '<about 25% of RAM>';  -- then restart",
            node=node.name,
            evidence={"hit": row["blks_hit"], "read": row["blks_read"], "ratio": ratio},
        )
    ]


async def bloat(primary: Node, t: Thresholds) -> list[Finding]:
    found = []
    for r in await primary.fetch(_BLOAT):
        extra = (r["pages"] - r["expected"]) * r["block"]
        if (
            r["pages"]
            and extra >= t.bloat_min_bytes
            and extra / (r["pages"] * r["block"]) >= t.bloat_ratio
        ):
            name = _q(r["schema"], r["table"])
            found.append(
                Finding(
                    "bloat",
                    name,
                    f"{name}: about {extra / 2**20:.0f} MiB of "
                    f"{r['pages'] * r['block'] / 2**20:.0f} MiB is dead space",
                    f"VACUUM (ANALYZE) {name};  -- to give the space back: pg_repack, or VACUUM "
                    f"FULL {name} (locks it)",
                    evidence={"pages": r["pages"], "expected_pages": r["expected"]},
                )
            )
    return found


async def sequences(primary: Node, t: Thresholds) -> list[Finding]:
    found = []
    for r in await primary.fetch(_SEQUENCES):
        limit = min(int(r["max_value"]), _TYPE_MAX.get(r["column_type"] or "", int(r["max_value"])))
        used = int(r["last_value"]) / limit
        if used < t.sequence_used:
            continue
        name = _q(r["schemaname"], r["sequencename"])
        fix = (
            f"ALTER TABLE {r['owner'].rpartition('.')[0]} ALTER COLUMN "
            f"{r['owner'].rpartition('.')[2]} TYPE bigint;"
            if r["owner"] and r["column_type"] != "bigint"
            else f"ALTER SEQUENCE {name} AS bigint MAXVALUE 9223372036854775807;"
        )
        found.append(
            Finding(
                "sequence_near_overflow",
                name,
                f"{name} has used {used:.0%} of its range ({r['last_value']:,} of {limit:,})",
                fix,
                evidence={"last_value": r["last_value"], "limit": limit, "column": r["owner"]},
            )
        )
    return found


async def sessions(node: Node, t: Thresholds) -> list[Finding]:
    rows = await node.fetch(
        "SELECT pid, usename, state, application_name, "
        "extract(epoch FROM now() - coalesce(xact_start, query_start)) AS secs, left(query, 200) "
        "AS query "
        "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
        "AND datname = current_database() "
        "AND ((state = 'active' AND now() - query_start > make_interval(secs => $1)) "
        "OR (state LIKE 'idle in transaction%' AND now() - state_change > make_interval(secs => "
        "$2)))",
        t.long_running_s,
        t.idle_in_transaction_s,
    )
    found = []
    for r in rows:
        idle = r["state"] != "active"
        found.append(
            Finding(
                "idle_in_transaction" if idle else "long_running",
                f"{node.name}:{r['pid']}",
                f"{node.name}: pid {r['pid']} ({r['usename']}) {r['state']} for {r['secs']:.0f} s",
                f"SELECT pg_terminate_backend({r['pid']});  -- and set "
                "idle_in_transaction_session_timeout"
                if idle
                else f"SELECT pg_cancel_backend({r['pid']});  -- and set statement_timeout",
                node=node.name,
                evidence={
                    "seconds": float(r["secs"]),
                    "query": r["query"],
                    "application": r["application_name"],
                },
            )
        )
    return found


async def replication(nodes: list[Node], t: Thresholds) -> list[Finding]:
    primary, found = nodes[0], []
    for r in await primary.fetch(
        "SELECT application_name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS "
        "bytes, "
        "extract(epoch FROM replay_lag) AS secs FROM pg_stat_replication"
    ):
        behind = int(r["bytes"] or 0)
        secs = float(r["secs"] or 0.0)
        if behind >= t.lag_bytes or secs >= t.lag_s or r["state"] != "streaming":
            found.append(
                Finding(
                    "replication_lag",
                    f"standby:{r['application_name']}",
                    f"standby {r['application_name']} is {r['state']}, {behind:,} bytes / "
                    f"{secs:.1f} s behind",
                    "-- check the standby's log and its disk and network; a slot keeps the WAL "
                    "it needs",
                    evidence={"bytes": behind, "seconds": secs, "state": r["state"]},
                )
            )
    for node in nodes[1:]:
        secs = await node.fetchval(
            "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
            "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
        )
        if secs is not None and float(secs) >= t.lag_s:
            found.append(
                Finding(
                    "replication_lag",
                    node.name,
                    f"{node.name} replays {float(secs):.1f} s behind",
                    "-- check the standby's log: replay conflicts, I/O, or a long query holding it",
                    node=node.name,
                    evidence={"seconds": float(secs)},
                )
            )
    for r in await primary.fetch(
        "SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) AS bytes "
        "FROM pg_replication_slots WHERE NOT active AND restart_lsn IS NOT NULL"
    ):
        found.append(
            Finding(
                "inactive_slot",
                r["slot_name"],
                f"replication slot {r['slot_name']} is inactive and holds {int(r['bytes']):,} "
                "bytes of WAL",
                f"SELECT pg_drop_replication_slot('{r['slot_name']}');  -- if its standby is gone",
                evidence={"bytes": int(r["bytes"])},
            )
        )
    return found
