"""Replica routing metrics.

- ``db_replica_healthy{replica}``: 1 while reads may go to that replica, 0 while they avoid it.
- ``db_replica_lag_bytes{replica}``: WAL the replica has yet to replay (last successful check).
- ``db_replica_lag_seconds{replica}``: how far behind that is in time; 0 when no bytes are behind.
- ``db_read_route_total{target,reason}``: read sessions by where they ended up and why, counted
  when they close (a read that moved after a replica error counts once, as replica_error, on the
  replica or the primary that then served it).
- ``db_replica_reads_total{replica}``: read sessions each replica served.

``replica`` is the replica's ``host:port`` (replica.replica_names).
"""

from __future__ import annotations

from app.platform.observability.registry import counter, gauge

# Under PROMETHEUS_MULTIPROC_DIR each worker checks on its own: report the worst live view.
REPLICA_HEALTHY = gauge(
    "db_replica_healthy",
    "1 while reads may go to the replica, 0 while they avoid it",
    ["replica"],
    multiprocess_mode="livemin",
)
REPLICA_LAG_BYTES = gauge(
    "db_replica_lag_bytes",
    "WAL bytes the replica has yet to replay, at the last successful check",
    ["replica"],
    multiprocess_mode="livemax",
)
REPLICA_LAG_SECONDS = gauge(
    "db_replica_lag_seconds",
    "How far behind the replica's replay is in time; 0 when no bytes are behind",
    ["replica"],
    multiprocess_mode="livemax",
)
READ_ROUTES = counter(
    "db_read_route_total",
    "Read sessions by the node that served them (target) and why (reason)",
    ["target", "reason"],
)
REPLICA_READS = counter(
    "db_replica_reads_total",
    "Read sessions served by each replica",
    ["replica"],
)

TARGET_PRIMARY = "primary"
TARGET_REPLICA = "replica"

REASON_REPLICA = "replica"
REASON_NO_REPLICA = "no_replica"
REASON_DISABLED = "routing_disabled"
REASON_UNHEALTHY = "replica_unhealthy"
REASON_ERROR = "replica_error"
REASON_TOKEN_NOT_REPLAYED = "token_not_replayed"  # noqa: S105 - a label value
REASON_WRITE_NOT_REPLAYED = "recent_write_not_replayed"
REASON_TOKEN_INVALID = "token_invalid"  # noqa: S105 - a label value
# On the replica although it is behind the caller's write: the primary could not be reached.
REASON_PRIMARY_UNAVAILABLE = "primary_unavailable"
