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
_DURATION_BOUNDS = tuple(float(b) for b in DURATION_BUCKETS if b != math.inf)
_QUERY_BOUNDS = tuple(float(b) for b in DB_QUERIES_BUCKETS if b != math.inf)
# The ``le`` labels, spelled as prometheus_client spells them ("0.005", "1.0", "+Inf").
_DURATION_LES: tuple[str, ...] = tuple(floatToGoString(b) for b in DURATION_BUCKETS)  # type: ignore[no-untyped-call]
_QUERY_LES: tuple[str, ...] = tuple(floatToGoString(b) for b in DB_QUERIES_BUCKETS)  # type: ignore[no-untyped-call]


class RouteSeries:
    """The series of one ``(module, route)``: in progress, queries per request, and per method."""

    __slots__ = ("methods", "module", "route", "static")

    def __init__(self, module: str, route: str, static: bool) -> None:
        self.module, self.route, self.static = module, route, static
        self.methods: dict[str, MethodSeries] = {}

    def method(self, method: str) -> MethodSeries:
        found = self.methods.get(method)
        if found is None:
            found = self.methods[method] = self._new_method(method)
        return found

    def _new_method(self, method: str) -> MethodSeries:
        raise NotImplementedError


class MethodSeries:
    """The series of one route and method: requests by status, duration."""

    __slots__ = ("method", "module", "owner", "route")

    def __init__(self, owner: RouteSeries, method: str) -> None:
        self.owner, self.method = owner, method
        self.module, self.route = owner.module, owner.route  # read per request: one hop fewer

    def enter(self) -> None:
        """A request for this route starts (``http_requests_in_progress`` + 1)."""
        raise NotImplementedError

    def record(self, status: int, duration: float, queries: int) -> None:
        """A request ended: counted, timed, its queries tallied, no longer in progress."""
        raise NotImplementedError


# --- one process: plain values, exported by a collector ------------------------------------------


class _LocalRoute(RouteSeries):
    __slots__ = ("query_counts", "query_sum")

    def __init__(self, module: str, route: str, static: bool) -> None:
        super().__init__(module, route, static)
        # Requests that ran statements, per bucket; those that ran none are derived at scrape
        # time (finished minus these), so a request without SQL writes nothing here.
        self.query_counts = [0] * (len(_QUERY_BOUNDS) + 1)
        self.query_sum = 0.0

    def _new_method(self, method: str) -> MethodSeries:
        return _LocalMethod(self, method)


class _LocalMethod(MethodSeries):
    """What a request writes: ``started`` when it begins; when it ends, its status count and
    its duration bucket and sum, plus its queries bucket and sum only if it ran any. In progress
    (started minus finished) and the zero-queries bucket (finished minus the others) are derived
    when scraped: the fewer long-lived values a request writes, the less it costs (measured in a
    worker, each such write costs several times its tight-loop figure)."""

    __slots__ = ("counts", "started", "statuses", "total")
    owner: _LocalRoute

    def __init__(self, owner: _LocalRoute, method: str) -> None:
        super().__init__(owner, method)
        self.started = 0  # on this object, not the route's: one object fewer written
        self.counts = [0] * (len(_DURATION_BOUNDS) + 1)  # per bucket, not cumulative
        self.total = 0.0
        self.statuses: dict[int, int] = {}

    def enter(self) -> None:
        self.started += 1

    def record(self, status: int, duration: float, queries: int) -> None:
        try:
            self.statuses[status] += 1
        except KeyError:
            self.statuses[status] = 1
        self.counts[bisect_left(_DURATION_BOUNDS, duration)] += 1
        self.total += duration
        if queries:
            owner = self.owner
            owner.query_counts[bisect_left(_QUERY_BOUNDS, queries)] += 1
            owner.query_sum += queries


def _buckets(les: Sequence[str], counts: list[int]) -> list[tuple[str, float]]:
    cumulative, out = 0, []
    for le, count in zip(les, counts, strict=True):
        cumulative += count
        out.append((le, float(cumulative)))
    return out


class HttpCollector(Collector):
    """The four HTTP families, built from the local series at scrape time."""

    def __init__(self, routes: dict[tuple[str, str], _LocalRoute]) -> None:
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
                assert isinstance(series, _LocalMethod)
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


class _SharedRoute(RouteSeries):
    __slots__ = ("db_queries", "in_progress")

    def __init__(self, module: str, route: str, static: bool) -> None:
        super().__init__(module, route, static)
        self.in_progress = adder(_shared().in_progress.labels(module, route))
        self.db_queries = Observer(_shared().db_queries.labels(module, route))

    def _new_method(self, method: str) -> MethodSeries:
        return _SharedMethod(self, method)


class _SharedMethod(MethodSeries):
    __slots__ = ("duration", "statuses")
    owner: _SharedRoute

    def __init__(self, owner: _SharedRoute, method: str) -> None:
        super().__init__(owner, method)
        self.duration = Observer(_shared().duration.labels(owner.module, owner.route, method))
        self.statuses: dict[int, Inc] = {}

    def enter(self) -> None:
        self.owner.in_progress(1)

    def record(self, status: int, duration: float, queries: int) -> None:
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
_local_routes: dict[tuple[str, str], _LocalRoute] = {}

if MULTIPROCESS:
    _shared()  # the families exist (and export) from the start, as declared metrics do
else:
    REGISTRY.register(HttpCollector(_local_routes))


def route_series(module: str, route: str, static: bool) -> RouteSeries:
    """The one series of ``(module, route)`` in this process, whichever app asks for it."""
    key = (module, route)
    found = _routes.get(key)
    if found is None:
        if MULTIPROCESS:
            found = _SharedRoute(module, route, static)
        else:
            found = _local_routes[key] = _LocalRoute(module, route, static)
        _routes[key] = found
    return found
