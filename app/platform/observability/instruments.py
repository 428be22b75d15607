"""The platform's own metric families: SQL timing, pool state, the N+1 detector.

The HTTP families (``http_requests_total``, ``http_request_duration_seconds``,
``http_requests_in_progress``, ``http_request_db_queries``) are in ``http_series.py``: in one
process they are recorded without ``prometheus_client`` on the request path.

- ``db_query_duration_seconds{module,operation,target}``
- ``db_pool_size{target}``, ``db_pool_checked_out{target}``, ``db_pool_overflow{target}``
- ``db_pool_wait_seconds{target}``
- ``db_n_plus_one_total{module,route}``
"""

from __future__ import annotations

from app.platform.observability.registry import counter, gauge, histogram

DB_QUERY_DURATION = histogram(
    "db_query_duration_seconds",
    "SQL statement execution time, by the module that ran it, operation and engine.",
    ("module", "operation", "target"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DB_POOL_SIZE = gauge(
    "db_pool_size",
    "Connections the pool keeps (pool_size), summed over live workers.",
    ("target",),
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = gauge(
    "db_pool_checked_out",
    "Connections currently checked out of the pool.",
    ("target",),
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = gauge(
    "db_pool_overflow",
    "Connections open beyond pool_size (negative while the pool is not yet filled).",
    ("target",),
    multiprocess_mode="livesum",
)
DB_POOL_WAIT = histogram(
    "db_pool_wait_seconds",
    "Time to get a connection from the pool, including opening one when the pool may grow.",
    ("target",),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DB_N_PLUS_ONE = counter(
    "db_n_plus_one_total",
    "Requests or event deliveries that ran one statement shape the threshold number of times.",
    ("module", "route"),
)
