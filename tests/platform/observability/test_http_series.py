"""The cheap recording paths say exactly what the general ones would.

In one process the HTTP families are plain values that the platform middleware writes in place
and that are turned into samples at scrape time, and the access line is rendered without
structlog's processor chain: both must expose what prometheus_client and the chain would have,
to the byte.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from app.platform import middleware
from app.platform.config import Settings
from app.platform.observability import http_series as hs
from app.platform.observability import logging as obs_logging
from app.platform.observability.context import current_scope

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


def _probe(request: Request) -> Response:  # never called: the route only names the module
    raise AssertionError


_probe.__module__ = "app.modules.payments.router"  # a route the payments module owns


@pytest.mark.skipif(hs.MULTIPROCESS, reason="the local series exist in one-process mode only")
async def test_what_the_middleware_records_exposes_what_prometheus_client_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
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

    # Each request: answered with its status after running its statements, timed 0 -> duration
    # on the middleware's clock (exact, so the bucket edges are hit as written).
    answer: dict[str, int] = {}
    clock: list[float] = []
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if answer.get("hold"):
            await release.wait()
        observed = current_scope()
        assert observed is not None
        assert observed.route == ROUTE
        observed.queries = answer["queries"]  # as the SQL instrumentation counts them
        await send({"type": "http.response.start", "status": answer["status"], "headers": []})
        await send({"type": "http.response.body", "body": b""})

    monkeypatch.setattr(middleware, "perf_counter", lambda: clock.pop(0))
    platform = middleware.PlatformMiddleware(
        app,
        router=Router([Route(ROUTE, _probe, methods=["GET", "POST"])]),
        max_body_bytes=1024,
        cookie_max_age=5,
        secure_cookies=False,
        access_log=False,
    )

    async def call(method: str) -> None:
        scope = {"type": "http", "method": method, "path": ROUTE, "headers": [], "root_path": ""}

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b""}

        async def send(message: object) -> None:
            pass

        await platform(scope, receive, send)

    for method in ("GET", "POST"):
        for status, seconds, ran in REQUESTS:
            answer.update(status=status, queries=ran)
            clock[:] = [0.0, seconds]
            await call(method)
            requests.labels("payments", ROUTE, method, str(status)).inc()
            duration.labels("payments", ROUTE, method).observe(seconds)
            queries.labels("payments", ROUTE).observe(ran)

    # One still running when scraped: in progress, not yet in any other family.
    answer.update(status=200, queries=2, hold=1)
    clock[:] = [0.0, 0.01]
    running = asyncio.create_task(call("GET"))
    await asyncio.sleep(0)
    in_progress.labels("payments", ROUTE).inc()
    assert _lines(REGISTRY) == _lines(reference)
    assert len(_lines(reference)) > 40

    release.set()
    await running
    in_progress.labels("payments", ROUTE).dec()
    requests.labels("payments", ROUTE, "GET", "200").inc()
    duration.labels("payments", ROUTE, "GET").observe(0.01)
    queries.labels("payments", ROUTE).observe(2)
    assert _lines(REGISTRY) == _lines(reference)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, obs_logging._json_lines)
    settings = Settings(_env_file=None, env="development", log_json=True, log_level="INFO")
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
