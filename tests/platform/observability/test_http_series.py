"""The cheap recording paths say exactly what the general ones would.

In one process the HTTP families are plain values turned into samples at scrape time, and the
access line is rendered without structlog's processor chain: both must expose what
prometheus_client and the chain would have, to the byte.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from app.platform.config import Settings
from app.platform.observability import http_series as hs
from app.platform.observability import logging as obs_logging

ROUTE = "/v1/series-equivalence/probe"
# (status, duration, queries): bucket edges, beyond the last bucket, and zero.
REQUESTS = [
    (200, 0.0, 0),
    (200, 0.005, 1),
    (404, 0.0051, 4),
    (200, 0.3, 100),
    (500, 10.0, 101),
    (499, 11.5, 0),
    (200, 0.0002, 3),
]


def _lines(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if f'route="{ROUTE}"' in line)


@pytest.mark.skipif(hs.MULTIPROCESS, reason="the local series exist in one-process mode only")
def test_local_series_expose_what_prometheus_client_would() -> None:
    ours = hs.route_series("payments", ROUTE, static=True)
    reference = CollectorRegistry()
    labels = ("module", "route")
    requests = Counter(
        hs.REQUESTS, hs.REQUESTS_HELP, (*labels, "method", "status"), registry=reference
    )
    duration = Histogram(
        hs.DURATION,
        hs.DURATION_HELP,
        (*labels, "method"),
        buckets=hs.DURATION_BUCKETS,
        registry=reference,
    )
    in_progress = Gauge(hs.IN_PROGRESS, hs.IN_PROGRESS_HELP, labels, registry=reference)
    queries = Histogram(
        hs.DB_QUERIES, hs.DB_QUERIES_HELP, labels, buckets=hs.DB_QUERIES_BUCKETS, registry=reference
    )

    for method in ("GET", "POST"):
        for status, seconds, ran in REQUESTS:
            ours.method(method).enter()
            ours.method(method).record(status, seconds, ran)
            requests.labels("payments", ROUTE, method, str(status)).inc()
            duration.labels("payments", ROUTE, method).observe(seconds)
            queries.labels("payments", ROUTE).observe(ran)
    ours.method("GET").enter()  # one still running
    in_progress.labels("payments", ROUTE).inc()

    assert _lines(REGISTRY) == _lines(reference)
    assert len(_lines(reference)) > 40


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, obs_logging._json_lines)
    settings = Settings(_env_file=None, env="development", log_json=True, log_level="INFO")  # type: ignore[call-arg]
    obs_logging.configure_logging(settings)
    out = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    try:
        yield out
    finally:
        root.handlers[:], level, obs_logging._json_lines = saved
        root.setLevel(level)


def test_the_access_line_renders_as_the_processor_chain_would(json_lines: io.StringIO) -> None:
    fields = {
        "request_id": "r-1",
        "method": "GET",
        "path": "/v1/items/7",
        "module": "payments",
        "route": "/v1/items/{item_id}",
        "status": 200,
        "duration_ms": 1.25,
        "db_queries": 2,
    }
    with structlog.contextvars.bound_contextvars(tenant="acme", request_id="bound"):
        obs_logging.access({**fields, "event": "request"})
        structlog.stdlib.get_logger("app.access").info("request", **fields)
    fast, chain = (json.loads(line) for line in json_lines.getvalue().splitlines())
    assert list(fast) == list(chain)  # same keys, same order
    assert fast.pop("timestamp")[:16] == chain.pop("timestamp")[:16]
    assert fast == chain
    assert fast["request_id"] == "r-1"  # the request's own id wins over a bound one
    assert fast["tenant"] == "acme"


def test_the_access_line_honours_the_logger_level(json_lines: io.StringIO) -> None:
    access = logging.getLogger("app.access")
    saved = access.level
    access.setLevel(logging.WARNING)
    try:
        obs_logging.access({"event": "request", "status": 200})
    finally:
        access.setLevel(saved)
    assert json_lines.getvalue() == ""
