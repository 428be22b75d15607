"""The platform's ASGI layer: one pure ASGI middleware, outermost, around the whole app.

Per HTTP request, in this order:

1. **Request id.** A sane incoming ``X-Request-ID`` is kept, anything else replaced by a fresh
   one; it is in ``scope["state"]["request_id"]``, on the response, and on every log line written
   while the request runs (it rides on the observation scope's ContextVar, which
   ``observability.logging.add_request_id`` reads).
2. **Route and observation** (``observability/http.py``). The route the router will pick is
   resolved before the app runs, so a 401, 413 or 500 produced on the way still carries its
   module and route template; the observation scope that SQL instrumentation and the N+1
   detector read is opened.
3. **Body limit and NUL characters.** A declared ``Content-Length`` over the limit is answered
   413 at once; a body that streams past it fails the read inside the route with 413. A NUL
   character (PostgreSQL text cannot hold one) in the path, the query string or a header value
   is answered 422 at once; in the body (raw, or JSON's ``\\u0000`` escape) it fails the read
   inside the route with 422. One rule here instead of one check per field.
4. **The app.** An unhandled exception becomes a 500 problem carrying the request id, its
   traceback logged once with that id (mid-response, the connection can only be dropped).
5. **Response.** ``http.response.start`` gets the request id and, when the session dependency
   issued one, the consistency token (header and HttpOnly cookie).
6. **Record.** The HTTP families (``http_series.py``) and the access line, under the exact
   status: 499 for a client that went away, 500 for an app that raised or never answered.

Why one layer and not one per concern: each ASGI middleware wraps ``send`` (and some
``receive``) in a closure or object of its own, and every response message then runs through
every wrapper. On a trivial endpoint in a uvicorn worker, the separate request-id, body-limit and
consistency-token middlewares cost ~13 µs a request more than this one layer doing the same work
(``make bench-http --before``); here a request makes one ``_Exchange`` whose two methods are the
only wrappers. With ``APP_HTTP_METRICS=false`` and ``APP_ACCESS_LOG=false`` steps 2 and 6 are
skipped and nothing else changes: that is the "instrumentation off" of ``make bench-http``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from bisect import bisect_left
from collections.abc import Awaitable
from time import perf_counter
from urllib.parse import parse_qsl

import structlog
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform import faults
from app.platform.db.consistency import STATE_KEY, TOKEN_COOKIE, TOKEN_HEADER
from app.platform.errors import (
    AppError,
    PayloadTooLarge,
    nul_refused,
)
from app.platform.observability.context import PLATFORM, ObservationScope, activate, deactivate
from app.platform.observability.http import RouteResolver, final_status, log_access
from app.platform.observability.http_series import DURATION_BOUNDS, MethodSeries
from app.platform.web.problems import ProblemRaised, problem_response

REQUEST_ID_HEADER = "x-request-id"
log = structlog.stdlib.get_logger("app.errors")
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_REQUEST_ID_RAW = REQUEST_ID_HEADER.encode()
_TOKEN_HEADER_RAW = TOKEN_HEADER.encode()
_CONTENT_LENGTH_RAW = b"content-length"
_OWN_HEADERS = frozenset((_REQUEST_ID_RAW, _TOKEN_HEADER_RAW))
_NUL, _ESCAPED_NUL, _BACKSLASH = b"\x00", b"\\u0000", 0x5C


def _nul_in_body(data: bytes) -> bool:
    """Whether ``data`` holds a NUL byte or a JSON ``\\u0000`` escape (an odd run of
    backslashes before ``u0000``: ``\\\\u0000`` is a backslash and the text ``u0000``)."""
    if _NUL in data:
        return True
    at = data.find(_ESCAPED_NUL)
    while at != -1:
        start = at
        while start > 0 and data[start - 1] == _BACKSLASH:
            start -= 1
        if (at - start) % 2 == 0:
            return True
        at = data.find(_ESCAPED_NUL, at + 1)
    return False


def _carry(data: bytes) -> bytes:
    """The end of ``data`` an escape split across two body chunks could start in: the last five
    bytes and the whole run of backslashes before them."""
    start = max(0, len(data) - len(_ESCAPED_NUL) + 1)
    while start > 0 and data[start - 1] == _BACKSLASH:
        start -= 1
    return data[start:]


def _nul_location(scope: Scope) -> list[str] | None:
    """Where the request line or headers hold a NUL character, or None (the usual case)."""
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or _NUL in query:
        names = [n for n, v in parse_qsl(query.decode("latin-1"), True) if "\x00" in n + v]
        return ["query", names[0] if names else ""]
    if "\x00" in scope["path"]:
        return ["path"]
    for name, value in scope["headers"]:
        if _NUL in value:
            return ["header", name.decode("latin-1")]
    return None


# Faults of the whole HTTP surface, for load tests and drills: they hit a share of the modules'
# requests (never the probes or /metrics, which are the platform's). While no fault at all is
# switched on, a request pays one truthiness test of the switches' dict.
SLOW_RESPONSES = faults.declare(
    "platform.slow_responses",
    "a share of API requests is held APP_FAULTS_SLOW_RESPONSE_SECONDS before the route runs",
)
SERVER_ERRORS = faults.declare(
    "platform.server_errors", "a share of API requests is answered 500 without running the route"
)
_SWITCHES = faults.switches()


class _Exchange(ObservationScope):
    """One request as the platform layer sees it: its observation scope (which SQL attributes its
    statements to), its request id, and what was said to the server. Its ``receive`` and ``send``
    methods are the request's only wrappers of the server's callables."""

    __slots__ = (
        "_receive",
        "_send",
        "carried",
        "complete",
        "cookie",
        "disconnected",
        "limit",
        "received",
        "request_id_raw",
        "state",
        "status",
    )

    def __init__(
        self,
        request_id: str,
        request_id_raw: bytes,
        state: dict[str, object],
        limit: int,
        cookie: str,
        receive: Receive,
        send: Send,
    ) -> None:
        # ObservationScope's fields, set here rather than through its __init__ (the hot path).
        self.module, self.route, self.kind = PLATFORM, "", "http"
        self.queries, self.shapes, self.observed = 0, None, True
        self.request_id, self.request_id_raw = request_id, request_id_raw
        self.state, self.limit, self.cookie = state, limit, cookie
        self._receive, self._send = receive, send
        self.status = self.received = 0
        self.complete = self.disconnected = False
        self.carried = b""

    def send(self, message: Message) -> Awaitable[None]:
        # Not a coroutine itself: it hands back the server's awaitable, so a response message
        # costs no extra coroutine and await layer.
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            # The platform's headers replace any the app set (names arrive lower-cased).
            headers = [h for h in message.get("headers", ()) if h[0] not in _OWN_HEADERS]
            headers.append((_REQUEST_ID_RAW, self.request_id_raw))
            token = self.state.get(STATE_KEY)
            if isinstance(token, str):
                headers.append((_TOKEN_HEADER_RAW, token.encode()))
                headers.append((b"set-cookie", f"{TOKEN_COOKIE}={token}; {self.cookie}".encode()))
            message["headers"] = headers
        elif kind == "http.response.body":
            self.complete = not message.get("more_body", False)
        elif kind == "http.response.pathsend":
            self.complete = True
        return self._send(message)

    async def receive(self) -> Message:
        message = await self._receive()
        kind = message["type"]
        if kind == "http.request":
            body: bytes = message.get("body", b"")
            self.received += len(body)
            if self.received > self.limit:
                # Raised inside the route's body read, so the app's handlers render it.
                raise StarletteHTTPException(413, detail=_too_large(self.limit))
            if body:
                data = self.carried + body if self.carried else body
                if (_NUL in data or _ESCAPED_NUL in data) and _nul_in_body(data):
                    raise ProblemRaised(nul_refused(["body"]))
                if message.get("more_body", False):
                    self.carried = _carry(data)
        elif kind == "http.disconnect" and not self.complete:
            self.disconnected = True
        return message


def _read_headers(scope: Scope) -> tuple[str, bytes, bytes | None]:
    """(the request id, as text and as bytes; the declared Content-Length) in one pass over the
    headers (names arrive lower-cased). A missing or insane request id is replaced by a new one."""
    incoming: bytes | None = None
    declared: bytes | None = None
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_RAW:
            if incoming is None:
                incoming = value
        elif name == _CONTENT_LENGTH_RAW and declared is None:
            declared = value
    if incoming is not None and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming.decode(), incoming, declared
    request_id = uuid.uuid4().hex
    return request_id, request_id.encode(), declared


def _too_large(limit: int) -> str:
    return f"The request body exceeds the limit of {limit} bytes"


class PlatformMiddleware:
    """Request ids, route resolution and HTTP metrics, the body limit, unhandled exceptions as
    problems, the consistency token, the access line: see the module's docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        router: Router,
        max_body_bytes: int,
        cookie_max_age: int,
        secure_cookies: bool,
        metrics: bool = True,
        access_log: bool = True,
        slow_fault_seconds: float = 1.0,
    ) -> None:
        self.app = app
        self.slow_fault_seconds = slow_fault_seconds
        self.max_body_bytes = max_body_bytes
        self.metrics, self.access_log = metrics, access_log
        # The access line names the route too, so it needs the resolution even without metrics.
        self.resolver: RouteResolver | None = (
            RouteResolver(router) if metrics or access_log else None
        )
        attributes = [f"Max-Age={cookie_max_age}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if secure_cookies:
            attributes.append("Secure")
        self.cookie_attributes = "; ".join(attributes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, incoming, declared = _read_headers(scope)
        state: dict[str, object] = scope.setdefault("state", {})
        state["request_id"] = request_id
        exchange = _Exchange(
            request_id, incoming, state, self.max_body_bytes, self.cookie_attributes, receive, send
        )
        series = self._enter(scope, exchange)
        started = perf_counter()
        # In context for the whole request: its id on every log line, and its observation.
        current = activate(exchange)
        failure: BaseException | None = None
        try:
            await self._serve(scope, receive, exchange, declared)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            deactivate(current)
            if series is not None:
                self._record(scope, exchange, series, perf_counter() - started, failure)

    def _enter(self, scope: Scope, exchange: _Exchange) -> MethodSeries | None:
        """The route's series (its in-flight count raised), or None when nothing is observed."""
        resolver = self.resolver
        if resolver is None:
            exchange.observed = False
            return None
        # The usual case inline: a parameter-free route this process has seen already, the
        # routes unchanged since (RouteResolver's memo) and no root path.
        routes = resolver.router.routes
        series = (
            resolver.memo.get((scope["path"], scope["method"]))
            if routes is resolver.routes
            and len(routes) == resolver.count
            and not scope.get("root_path")
            else None
        ) or resolver(scope)
        exchange.module, exchange.route = series.module, series.route
        if self.metrics:
            if series.shared is None:
                series.started += 1
            else:
                series.shared.enter()
        return series

    async def _serve(
        self, scope: Scope, receive: Receive, exchange: _Exchange, declared: bytes | None
    ) -> None:
        """Refuse what is refused before the app (too large, NUL), else run the app; an
        unhandled exception before the response started becomes a 500 problem."""
        nul = _nul_location(scope)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            error = PayloadTooLarge(_too_large(self.max_body_bytes))
            await self._answer(scope, receive, exchange, error)
            return
        if nul is not None:
            await self._answer(scope, receive, exchange, nul_refused(nul))
            return
        try:
            if not (_SWITCHES and await self._faulted(scope, receive, exchange)):
                await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            log.exception("unhandled exception", path=scope.get("path"), method=scope.get("method"))
            if exchange.status:
                raise  # mid-response: the server can only drop the connection
            await self._answer(scope, receive, exchange, AppError())

    def _record(
        self,
        scope: Scope,
        exchange: _Exchange,
        series: MethodSeries,
        duration: float,
        failure: BaseException | None,
    ) -> None:
        status = exchange.status
        if failure is not None or exchange.disconnected or not status:
            status = final_status(status, exchange.disconnected, failure)
        if self.metrics:
            # One process: http_series.MethodSeries's values, written in place here and
            # nowhere else (no call a request; ~0.15 µs less in a tight loop).
            if series.shared is None:
                statuses = series.statuses
                try:
                    statuses[status] += 1
                except KeyError:
                    statuses[status] = 1
                series.counts[bisect_left(DURATION_BOUNDS, duration)] += 1
                series.total += duration
                if exchange.queries:
                    series.owner.add_queries(exchange.queries)
            else:
                series.shared.record(status, duration, exchange.queries)
        if self.access_log:
            log_access(exchange.request_id, scope, series, status, duration, exchange.queries)

    async def _faulted(self, scope: Scope, receive: Receive, exchange: _Exchange) -> bool:
        """Suffer the platform's switched-on faults; whether the request was answered here."""
        if exchange.module == PLATFORM:
            return False
        if SLOW_RESPONSES.hits():
            await asyncio.sleep(self.slow_fault_seconds)
        if SERVER_ERRORS.hits():
            await self._answer(scope, receive, exchange, AppError("injected fault"))
            return True
        return False

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        exchange: _Exchange,
        error: AppError,
    ) -> None:
        """Answer with ``error``'s problem (through ``exchange.send``: it gets the request id)."""
        response = problem_response(
            None,
            status=error.status,
            slug=error.slug,
            title=error.title,
            detail=error.detail,
            headers=error.headers,
            instance=scope.get("path", ""),
            request_id=exchange.request_id,
            **error.extensions,
        )
        await response(scope, receive, exchange.send)
