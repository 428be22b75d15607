"""The platform's own metric families: HTTP RED, SQL timing, pool state, the N+1 detector.

- ``http_requests_total{module,route,method,status}``
- ``http_request_duration_seconds{module,route,method}``
- ``http_requests_in_progress{module,route}``
- ``http_request_db_queries{module,route}``
- ``db_query_duration_seconds{module,operation,target}``
- ``db_pool_size{target}``, ``db_pool_checked_out{target}``, ``db_pool_overflow{target}``
- ``db_pool_wait_seconds{target}``
- ``db_n_plus_one_total{module,route}``
"""

from __future__ import annotations

from prometheus_client import Histogram

from app.platform.observability.registry import counter, gauge, histogram

HTTP_REQUESTS = counter(
    "http_requests_total",
    "HTTP requests answered, by owning module, route template, method and exact status.",
    ("module", "route", "method", "status"),
)
HTTP_DURATION = histogram(
    "http_request_duration_seconds",
    "Time from the request entering the app to the last byte of the response being handed over.",
    ("module", "route", "method"),
    buckets=Histogram.DEFAULT_BUCKETS,  # 0.005 ... 10
)
HTTP_IN_PROGRESS = gauge(
    "http_requests_in_progress",
    "HTTP requests being handled right now.",
    ("module", "route"),
    multiprocess_mode="livesum",
)
HTTP_DB_QUERIES = histogram(
    "http_request_db_queries",
    "SQL statements run by one HTTP request.",
    ("module", "route"),
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100),
)

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
