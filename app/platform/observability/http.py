"""HTTP RED metrics and the access log: what the platform's ASGI layer records per request.

``PlatformMiddleware`` (``app/platform/middleware.py``, the one pure ASGI layer around the whole
app) resolves the route here, before the app runs, against the app's own routes: a 401 from a
dependency, a 413 from the body limit or a 500 rendered for an unhandled exception all carry the
route template of the request they answer. The module owning a route is the one its endpoint is
defined in (``app.modules.<name>....``); everything else is ``platform``.

The hot path allocates little: the series of each route and method are resolved once and kept
(``http_series.py``) and parameter-free routes are memoized by path, so a request costs a
dictionary lookup, two clock reads and a few writes in place.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from fastapi.routing import RouteContext, iter_route_contexts
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Router
from starlette.types import Scope

from app.platform.observability.context import PLATFORM
from app.platform.observability.http_series import MethodSeries, RouteSeries, route_series
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


class RouteResolver:
    """Which route of ``router`` a request will reach, found before the app runs: its series.

    The router's own rule (the first full match wins; a path that exists only for other methods
    is its route's 405; anything else is ``<unmatched>``) over a flattened table of the app's
    routes, rebuilt when routes are added (tests, a late ``include_router``). Methods outside
    the standard set share ``OTHER``. ``memo`` maps ``(path, method)`` of parameter-free
    templates and standard methods to their series: a bounded set, whatever clients send, that
    the middleware reads directly while ``routes`` and ``count`` hold.
    """

    __slots__ = ("_memoize", "_table", "_unmatched", "count", "memo", "router", "routes")

    def __init__(self, router: Router) -> None:
        self.router = router
        # The routes list the table was built from, and its length then: while both hold (and
        # the request has no root path), ``memo`` answers. The middleware checks them inline.
        self.routes: list[BaseRoute] | None = None
        self.count = -1
        self._table: list[_Candidate] = []
        self.memo: dict[tuple[str, str], MethodSeries] = {}
        self._memoize = False
        self._unmatched = route_series(PLATFORM, UNMATCHED, static=False)

    def __call__(self, scope: Scope) -> MethodSeries:
        routes = self.router.routes
        if routes is not self.routes or len(routes) != self.count:
            self._table = [_Candidate.of(c) for c in iter_route_contexts(routes)]
            self.routes, self.count = routes, len(routes)
            self.memo = {}
            self._memoize = all(c.path_regex is not None for c in self._table)
        path = get_route_path(scope)
        method = scope["method"]
        memo_key = (path, method)
        found = self.memo.get(memo_key)
        if found is not None and not scope.get("root_path"):
            return found
        series: RouteSeries | None = None
        partial: RouteSeries | None = None
        for candidate in self._table:
            match = candidate.match(scope, path)
            if match is Match.FULL:
                series = candidate.series
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate.series  # the path exists, the method does not: its 405
        else:
            series = partial or self._unmatched
        standard = method in STANDARD_METHODS
        by_method = series.method(method if standard else OTHER_METHOD)
        # Routing depends on path and method alone unless a host route is in the table; the
        # memo is keyed by the path as sent, so only requests without a root path fill it.
        if (
            series.static
            and standard
            and self._memoize
            and not scope.get("root_path")
            and len(self.memo) < 4096
        ):
            self.memo[memo_key] = by_method
        return by_method


def final_status(sent: int, disconnected: bool, failure: BaseException | None) -> int:
    """The status a request is recorded under: what was sent, 499 or 500 when nothing useful was."""
    if disconnected or isinstance(failure, asyncio.CancelledError):
        return CLIENT_CLOSED
    if failure is not None or sent == 0:
        return 500  # what the server sends for an app that broke or never answered
    return sent


def log_access(
    request_id: str | None,
    scope: Scope,
    series: MethodSeries,
    status: int,
    duration: float,
    queries: int,
) -> None:
    """The request's access line: id, module, route, status, duration and SQL statements."""
    access(
        {
            "request_id": request_id,
            "method": series.method,
            "path": scope.get("path"),
            "module": series.module,
            "route": series.route,
            "status": status,
            "duration_ms": round(duration * 1000, 3),
            "db_queries": queries,
            "event": "request",
        }
    )
