"""The HTTP families' series: recorded on the request path, turned into samples at scrape time.

- ``http_requests_total{module,route,method,status}``
- ``http_request_duration_seconds{module,route,method}``
- ``http_requests_in_progress{module,route}``
- ``http_request_db_queries{module,route}``

Two ways to record, chosen once per process:

- **One process** (no ``PROMETHEUS_MULTIPROC_DIR``): each route and method keeps plain ints and
  floats (per-bucket counts, a sum, a count per status) that the middleware bumps directly, and
  ``HttpCollector`` turns them into the four families when ``/metrics`` is scraped. A request
  costs a bisect and a few additions instead of six locked ``prometheus_client`` updates and
  their Python calls, which inside a busy worker cost several microseconds more than they do in a
  tight loop. A request writes as few of them as it can: in progress and the zero-queries bucket
  are derived at scrape time. Only the event loop thread records (middleware code never runs in
  the threadpool) and ``/metrics`` collects on that thread too, so no lock is taken and a scrape
  never sees a request half-recorded.
- **Several worker processes** (``PROMETHEUS_MULTIPROC_DIR`` set): the values must be in each
  worker's files for a scrape by any worker to add them up, so the series are
  ``prometheus_client`` children updated through the handles of ``fast.py``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client import REGISTRY, Histogram, values
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from app.platform.observability.fast import Inc, Observer, adder
from app.platform.observability.registry import counter, gauge, histogram

REQUESTS = "http_requests_total"
REQUESTS_HELP = "HTTP requests answered, by owning module, route template, method and exact status."
DURATION = "http_request_duration_seconds"
DURATION_HELP = (
    "Time from the request entering the app to the last byte of the response being handed over."
)
DURATION_BUCKETS: tuple[float, ...] = tuple(Histogram.DEFAULT_BUCKETS)  # 0.005 ... 10, +Inf
IN_PROGRESS = "http_requests_in_progress"
IN_PROGRESS_HELP = "HTTP requests being handled right now."
DB_QUERIES = "http_request_db_queries"
DB_QUERIES_HELP = "SQL statements run by one HTTP request."
DB_QUERIES_BUCKETS: tuple[float, ...] = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100, math.inf)

# The finite bounds: bisect_left over them gives the bucket an observation falls in (the first
# bound >= it, as Histogram.observe picks it), len() of them meaning +Inf.
DURATION_BOUNDS = tuple(float(b) for b in DURATION_BUCKETS if b != math.inf)
QUERY_BOUNDS = tuple(float(b) for b in DB_QUERIES_BUCKETS if b != math.inf)
# The ``le`` labels, spelled as prometheus_client spells them ("0.005", "1.0", "+Inf").
_DURATION_LES: tuple[str, ...] = tuple(floatToGoString(b) for b in DURATION_BUCKETS)  # type: ignore[no-untyped-call]
_QUERY_LES: tuple[str, ...] = tuple(floatToGoString(b) for b in DB_QUERIES_BUCKETS)  # type: ignore[no-untyped-call]


class RouteSeries:
    """The series of one ``(module, route)``: queries per request, and the per-method series.

    In one process, the requests that ran statements per queries bucket and their sum (those
    that ran none are derived at scrape time, so a request without SQL writes nothing here); with
    several processes, ``shared`` holds the file-backed children written instead.
    """

    __slots__ = ("methods", "module", "query_counts", "query_sum", "route", "shared", "static")

    def __init__(self, module: str, route: str, static: bool) -> None:
        self.module, self.route, self.static = module, route, static
        self.methods: dict[str, MethodSeries] = {}
        self.query_counts = [0] * (len(QUERY_BOUNDS) + 1)
        self.query_sum = 0.0
        self.shared = _SharedRoute(module, route) if MULTIPROCESS else None

    def method(self, method: str) -> MethodSeries:
        found = self.methods.get(method)
        if found is None:
            found = self.methods[method] = MethodSeries(self, method)
        return found

    def add_queries(self, queries: int) -> None:
        """One request ran ``queries`` (> 0) statements (one process)."""
        self.query_counts[bisect_left(QUERY_BOUNDS, queries)] += 1
        self.query_sum += queries


class MethodSeries:
    """The series of one route and method: requests by status, duration.

    In one process, ``PlatformMiddleware`` writes these values in place, and only what it must:
    ``started`` when a request begins; when it ends, its status count and its duration bucket
    (``counts``, per bucket, not cumulative) and sum (``total``), and ``owner.add_queries`` if
    it ran statements. In progress (started minus finished) and the zero-queries bucket are
    derived when scraped: the fewer values a request writes, the less it costs (docs,
    *Benchmark*: the recording is ~1% of a trivial request's instructions). With several processes
    ``shared`` is set and its ``enter()`` and ``record()`` are called instead.
    """

    __slots__ = (
        "counts",
        "method",
        "module",
        "owner",
        "route",
        "shared",
        "started",
        "statuses",
        "total",
    )

    def __init__(self, owner: RouteSeries, method: str) -> None:
        self.owner, self.method = owner, method
        self.module, self.route = owner.module, owner.route  # read per request: one hop fewer
        self.started = 0
        self.counts = [0] * (len(DURATION_BOUNDS) + 1)
        self.total = 0.0
        self.statuses: dict[int, int] = {}
        self.shared = _SharedMethod(owner.shared, method) if owner.shared is not None else None


def _buckets(les: Sequence[str], counts: list[int]) -> list[tuple[str, float]]:
    cumulative, out = 0, []
    for le, count in zip(les, counts, strict=True):
        cumulative += count
        out.append((le, float(cumulative)))
    return out


class HttpCollector(Collector):
    """The four HTTP families, built from the local series at scrape time."""

    def __init__(self, routes: dict[tuple[str, str], RouteSeries]) -> None:
        self._routes = routes

    @staticmethod
    def _families() -> tuple[
        CounterMetricFamily, HistogramMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    ]:
        route = ("module", "route")
        return (
            CounterMetricFamily(REQUESTS, REQUESTS_HELP, labels=(*route, "method", "status")),
            HistogramMetricFamily(DURATION, DURATION_HELP, labels=(*route, "method")),
            GaugeMetricFamily(IN_PROGRESS, IN_PROGRESS_HELP, labels=route),
            HistogramMetricFamily(DB_QUERIES, DB_QUERIES_HELP, labels=route),
        )

    def describe(self) -> Iterable[Metric]:
        # Lets the registry refuse another metric of these names without collecting.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """Called on the event loop thread that records (``/metrics`` does): the derived values
        need the counts they are derived from to be read with no request recorded in between."""
        requests, duration, in_progress, db_queries = self._families()
        for route in list(self._routes.values()):
            labels = [route.module, route.route]
            started = finished = 0
            for series in list(route.methods.values()):
                started += series.started
                by_method = [*labels, series.method]
                for status, count in list(series.statuses.items()):
                    requests.add_metric([*by_method, str(status)], count)
                    finished += count
                duration.add_metric(
                    by_method, _buckets(_DURATION_LES, list(series.counts)), series.total
                )
            in_progress.add_metric(labels, started - finished)
            queries = list(route.query_counts)
            queries[0] = finished - sum(queries[1:])  # the requests that ran no statement
            db_queries.add_metric(labels, _buckets(_QUERY_LES, queries), route.query_sum)
        return (requests, duration, in_progress, db_queries)


# --- several processes: prometheus_client children, file-backed -----------------------------------


class _SharedRoute:
    __slots__ = ("db_queries", "in_progress", "module", "route")

    def __init__(self, module: str, route: str) -> None:
        self.module, self.route = module, route
        self.in_progress = adder(_shared().in_progress.labels(module, route))
        self.db_queries = Observer(_shared().db_queries.labels(module, route))


class _SharedMethod:
    __slots__ = ("duration", "method", "owner", "statuses")

    def __init__(self, owner: _SharedRoute, method: str) -> None:
        self.owner, self.method = owner, method
        self.duration = Observer(_shared().duration.labels(owner.module, owner.route, method))
        self.statuses: dict[int, Inc] = {}

    def enter(self) -> None:
        """A request for this route starts (``http_requests_in_progress`` + 1)."""
        self.owner.in_progress(1)

    def record(self, status: int, duration: float, queries: int) -> None:
        """A request ended: counted, timed, its queries tallied, no longer in progress."""
        owner = self.owner
        owner.in_progress(-1)
        requests = self.statuses.get(status)
        if requests is None:
            requests = self.statuses[status] = adder(
                _shared().requests.labels(owner.module, owner.route, self.method, str(status))
            )
        requests(1)
        self.duration(duration)
        owner.db_queries(queries)


class _SharedFamilies:
    def __init__(self) -> None:
        labels = ("module", "route")
        self.requests = counter(REQUESTS, REQUESTS_HELP, (*labels, "method", "status"))
        self.duration = histogram(
            DURATION, DURATION_HELP, (*labels, "method"), buckets=DURATION_BUCKETS
        )
        self.in_progress = gauge(IN_PROGRESS, IN_PROGRESS_HELP, labels, multiprocess_mode="livesum")
        self.db_queries = histogram(DB_QUERIES, DB_QUERIES_HELP, labels, buckets=DB_QUERIES_BUCKETS)


_shared_families: _SharedFamilies | None = None


def _shared() -> _SharedFamilies:
    global _shared_families
    if _shared_families is None:
        _shared_families = _SharedFamilies()
    return _shared_families


# --- the process's series -------------------------------------------------------------------------

# prometheus_client picked file-backed values at import if PROMETHEUS_MULTIPROC_DIR was set.
MULTIPROCESS: bool = bool(getattr(values.ValueClass, "_multiprocess", False))

_routes: dict[tuple[str, str], RouteSeries] = {}

if MULTIPROCESS:
    _shared()  # the families exist (and export) from the start, as declared metrics do
else:
    REGISTRY.register(HttpCollector(_routes))


def route_series(module: str, route: str, static: bool) -> RouteSeries:
    """The one series of ``(module, route)`` in this process, whichever app asks for it."""
    key = (module, route)
    found = _routes.get(key)
    if found is None:
        found = _routes[key] = RouteSeries(module, route, static)
    return found
