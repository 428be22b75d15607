"""HTTP RED metrics and the access log, from one pure ASGI middleware around the whole app.

The route is resolved here, before the app runs, against the app's own routes: a 401 from a
dependency, a 429 from a middleware or a 500 rendered by ``RequestIdMiddleware`` all carry the
route template of the request they answer. The module owning a route is the one its endpoint is
defined in (``app.modules.<name>....``); everything else is ``platform``.

The hot path allocates little: the series of each route and method are resolved once and kept
(``http_series.py``), parameter-free routes are memoized by path, so a request costs a dictionary
lookup, one ``_Exchange`` (its observation scope and its receive/send wrappers in one object),
two clock reads and one ``record()``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from fastapi.routing import RouteContext, iter_route_contexts
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.observability.context import PLATFORM, ObservationScope, activate, deactivate
from app.platform.observability.http_series import RouteSeries, route_series
from app.platform.observability.logging import access

UNMATCHED = "<unmatched>"
OTHER_METHOD = "OTHER"
STANDARD_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")
)
CLIENT_CLOSED = 499  # nginx's code for "the client went away before the response was sent"


def module_of(endpoint: Any) -> str:
    """``app.modules.<name>.router`` -> ``<name>``; the platform, FastAPI's docs -> platform."""
    parts = (getattr(endpoint, "__module__", None) or "").split(".")
    if len(parts) >= 3 and parts[0] == "app" and parts[1] == "modules":
        return parts[2]
    return PLATFORM


@dataclass(slots=True)
class _Candidate:
    """One effective route (included routers flattened), reduced to what matching needs."""

    context: RouteContext
    path_regex: re.Pattern[str] | None
    methods: frozenset[str] | None
    series: RouteSeries

    @classmethod
    def of(cls, context: RouteContext) -> _Candidate:
        template = context.path_format or context.path or UNMATCHED
        endpoint = context.endpoint or getattr(context.original_route, "app", None)
        regex = getattr(context, "path_regex", None)
        methods = context.methods
        return cls(
            context,
            regex if isinstance(regex, re.Pattern) else None,
            frozenset(methods) if methods else None,
            route_series(module_of(endpoint), template, "{" not in template),
        )

    def match(self, scope: Scope, path: str) -> Match:
        if self.path_regex is None:  # not a plain path route (a host route, a frontend group)
            found: Match = self.context.matches(scope)[0]
            return found
        if self.path_regex.match(path) is None:
            return Match.NONE
        if self.methods is not None and scope["method"] not in self.methods:
            return Match.PARTIAL
        return Match.FULL


class _Exchange(ObservationScope):
    """One request as the middleware sees it: its observation scope (what SQL attributes its
    statements to) and what was said to the server. One object per request, its methods the
    wrappers of ``receive`` and ``send``: fewer allocations than closures and cells."""

    __slots__ = ("_receive", "_send", "complete", "disconnected", "status")

    def __init__(self, module: str, route: str, receive: Receive, send: Send) -> None:
        ObservationScope.__init__(self, module, route)
        self._receive, self._send = receive, send
        self.status = 0
        self.complete = self.disconnected = False

    def send(self, message: Message) -> Awaitable[None]:
        # Not a coroutine itself: it hands back the server's awaitable, so the response costs no
        # extra coroutine and await layer per message.
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif kind == "http.response.body":
            self.complete = not message.get("more_body", False)
        elif kind == "http.response.pathsend":
            self.complete = True
        return self._send(message)

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.complete:
            self.disconnected = True
        return message


class HttpMetricsMiddleware:
    """Count, time and log every HTTP request under its module and route template.

    Installed outermost, so it sees the final status of everything inside, including the 500 that
    ``RequestIdMiddleware`` renders for an unhandled exception.
    """

    def __init__(self, app: ASGIApp, router: Router, access_log: bool = True) -> None:
        self.app = app
        self.router = router
        self.access_log = access_log
        self._routes: list[BaseRoute] | None = None
        self._count = -1
        self._table: list[_Candidate] = []
        self._memo: dict[tuple[str, str], RouteSeries] = {}
        self._memoize = False
        self._unmatched = route_series(PLATFORM, UNMATCHED, static=False)

    def _resolve(self, scope: Scope) -> RouteSeries:
        """The route the router will pick, as the router picks it: first full match wins."""
        routes = self.router.routes
        if routes is not self._routes or len(routes) != self._count:
            # Routes can be added after the middleware is built (tests, late include_router).
            self._table = [_Candidate.of(c) for c in iter_route_contexts(routes)]
            self._routes, self._count = routes, len(routes)
            self._memo = {}
            self._memoize = all(c.path_regex is not None for c in self._table)
        path = get_route_path(scope)
        memo_key = (path, scope["method"])
        found = self._memo.get(memo_key)
        if found is not None:
            return found
        partial: RouteSeries | None = None
        for candidate in self._table:
            match = candidate.match(scope, path)
            if match is Match.FULL:
                found = candidate.series
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate.series  # the path exists, the method does not: its 405
        else:
            found = partial or self._unmatched
        # Only parameter-free templates are memoized: a bounded set, whatever paths clients
        # send. Routing depends on path and method alone unless a host route is in the table.
        if found.static and self._memoize and len(self._memo) < 4096:
            self._memo[memo_key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        routes = self.router.routes
        # The usual case, inline: a parameter-free route already resolved, routes unchanged.
        series = (
            self._memo.get((scope["path"], method))
            if routes is self._routes and len(routes) == self._count and not scope.get("root_path")
            else None
        ) or self._resolve(scope)
        if method not in STANDARD_METHODS:
            method = OTHER_METHOD
        by_method = series.methods.get(method) or series.method(method)

        exchange = _Exchange(series.module, series.route, receive, send)
        failure: BaseException | None = None
        token = activate(exchange)
        series.enter()
        started = perf_counter()
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            duration = perf_counter() - started
            deactivate(token)
            status = exchange.status
            if exchange.disconnected or isinstance(failure, asyncio.CancelledError):
                status = CLIENT_CLOSED
            elif failure is not None or status == 0:
                status = 500  # what the server sends for an app that broke or never answered
            by_method.record(status, duration, exchange.queries)
            if self.access_log:
                self._log(scope, series, method, status, duration, exchange.queries)

    @staticmethod
    def _log(
        scope: Scope, series: RouteSeries, method: str, status: int, duration: float, queries: int
    ) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        access(
            {
                "request_id": state.get("request_id"),
                "method": method,
                "path": scope.get("path"),
                "module": series.module,
                "route": series.route,
                "status": status,
                "duration_ms": round(duration * 1000, 3),
                "db_queries": queries,
                "event": "request",
            }
        )
