"""SQL instrumentation: statement timing per module, pool state, the N+1 detector, query counting.

``instrument_engine()`` is called by ``Database`` for each engine it creates (primary and replica).
Every statement is attributed to the current observation scope (the HTTP request or the event
delivery running it; ``platform`` outside any), counted on that scope, and its normalized shape
is tallied: the ``threshold``-th execution of one shape within one scope is an N+1, which bumps
``db_n_plus_one_total``, logs one warning and, in strict mode (the tests), raises.

Each statement also leaves with a sqlcommenter-style comment naming its module and route, so
``pg_stat_statements`` (and the database audit that reads it) can tell who issues it; and a
statement slower than ``db_sample_slow_ms`` keeps its parameters as a sample the audit can
EXPLAIN with.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from prometheus_client.metrics import Histogram
from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext, ExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection

from app.platform.config import Settings
from app.platform.observability import instruments as m
from app.platform.observability.context import PLATFORM, ObservationScope, current_scope
from app.platform.observability.logging import get_logger

log = get_logger("app.db")

OPERATIONS = ("select", "insert", "update", "delete")
_CACHE_LIMIT = 4096


class NPlusOneDetected(AssertionError):
    """Raised in strict mode when one statement shape repeats within a request or delivery."""


# --- statement normalization ------------------------------------------------------------------

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_STRINGS = re.compile(r"'(?:[^']|'')*'")
_PARAMS = re.compile(r"\$\d+|%\(\w+\)s|%s|\?|(?<![:\w]):\w+")
_CASTS = re.compile(r"::[\w\[\]]+(?:\s*\([\d,\s]*\))?")
_NUMBERS = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.I)
_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SPACES = re.compile(r"\s+")
_DML = re.compile(r"\b(insert|update|delete)\b", re.I)

_shapes: dict[str, tuple[str, str]] = {}


def normalize(statement: str) -> str:
    """The statement's shape: literals, parameters and casts stripped, IN-lists collapsed."""
    shape = _COMMENTS.sub(" ", statement)
    shape = _STRINGS.sub("?", shape)
    shape = _CASTS.sub("", shape)
    shape = _PARAMS.sub("?", shape)
    shape = _NUMBERS.sub("?", shape)
    shape = _LISTS.sub("(?)", shape)
    return _SPACES.sub(" ", shape).strip()


def classify(statement: str) -> tuple[str, str]:
    """``(operation, shape)`` of a statement, cached: an app runs a small set of statements."""
    found = _shapes.get(statement)
    if found is None:
        shape = normalize(statement)
        word = shape.split(" ", 1)[0].lower() if shape else ""
        if word in OPERATIONS:
            operation = word
        elif word == "with":
            dml = _DML.search(shape)
            operation = dml.group(1).lower() if dml else "select"
        else:
            operation = "other"
        found = (operation, shape)
        if len(_shapes) >= _CACHE_LIMIT:
            _shapes.clear()  # literal-laden ad-hoc SQL must not grow this without bound
        _shapes[statement] = found
    return found


# --- counting queries in a block (tests' query budgets) ----------------------------------------


@dataclass
class QueryLog:
    """The statements run inside one ``count_queries()`` block, in order."""

    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)


_counting: ContextVar[tuple[QueryLog, ...]] = ContextVar("query_counting", default=())


@contextmanager
def count_queries() -> Iterator[QueryLog]:
    """Record every statement run in this context (and the requests it makes in-process)."""
    found = QueryLog()
    token = _counting.set((*_counting.get(), found))
    try:
        yield found
    finally:
        _counting.reset(token)


# --- the sqlcommenter tag and the slow-statement samples ---------------------------------------

_tags: dict[tuple[str, str], str] = {}
_ROUTE_SAFE = "/{}"  # readable route templates; quote() still encodes "*", "'" and spaces


def sql_tag(module: str, route: str) -> str:
    """The comment appended to a statement run for ``module`` and ``route`` (sqlcommenter style).

    Cached per (module, route): an app has a few dozen routes, and the hot path then pays one
    dict lookup and one string concatenation a statement (bench: make bench-sql-tag).
    """
    key = (module, route)
    found = _tags.get(key)
    if found is None:
        if len(_tags) >= _CACHE_LIMIT:
            _tags.clear()
        # URL-encoded values (the sqlcommenter rule) can never close the comment early.
        found = _tags[key] = (
            f" /*module='{quote(module, safe='')}',route='{quote(route, safe=_ROUTE_SAFE)}'*/"
        )
    return found


@dataclass(frozen=True, slots=True)
class Sample:
    """One slow execution of a statement: its text, the parameters it ran with, who ran it."""

    statement: str
    parameters: Any
    module: str
    route: str
    seconds: float


_SAMPLE_LIMIT = 256
_samples: OrderedDict[str, Sample] = OrderedDict()


def samples() -> dict[str, Sample]:
    """The latest slow sample of each statement shape seen by this process (shape -> sample)."""
    return dict(_samples)


def clear_samples() -> None:
    _samples.clear()


def _keep_sample(statement: str, parameters: Any, seconds: float) -> None:
    shape = classify(statement)[1]
    scope = current_scope()
    module, route = (scope.module, scope.route) if scope is not None else (PLATFORM, "")
    _samples[shape] = Sample(statement, parameters, module, route, seconds)
    _samples.move_to_end(shape)
    while len(_samples) > _SAMPLE_LIMIT:
        _samples.popitem(last=False)


# --- the pool ---------------------------------------------------------------------------------


class InstrumentedPool(AsyncAdaptedQueuePool):
    """The async queue pool, reporting its state and how long a checkout waits.

    Subclassed rather than listened to because no pool event marks the start of a checkout, and
    the checkin event fires before the connection is back in the queue.
    """

    target: str | None = None
    # Log as the pool it extends: SQLAlchemy keeps its "sqlalchemy.*" loggers at WARNING.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

    def connect(self) -> PoolProxiedConnection:
        if self.target is None:
            return super().connect()
        started = time.perf_counter()
        try:
            return super().connect()
        finally:
            m.DB_POOL_WAIT.labels(self.target).observe(time.perf_counter() - started)
            self._report()

    def _do_return_conn(self, record: Any) -> None:
        super()._do_return_conn(record)
        if self.target is not None:
            self._report()

    def recreate(self) -> InstrumentedPool:
        pool: InstrumentedPool = super().recreate()  # type: ignore[assignment]
        pool.target = self.target
        return pool

    def _report(self) -> None:
        target = self.target
        m.DB_POOL_SIZE.labels(target).set(self.size())
        m.DB_POOL_CHECKED_OUT.labels(target).set(self.checkedout())
        # Negative while the pool has not opened pool_size connections yet: not overflow.
        m.DB_POOL_OVERFLOW.labels(target).set(max(0, self.overflow()))


# --- the engine -------------------------------------------------------------------------------


class _StatementHooks:
    """The engine's statement listeners: timing, the N+1 detector, the module/route comment."""

    def __init__(self, target: str, settings: Settings) -> None:
        self.target = target
        self.threshold = settings.db_n_plus_one_threshold
        self.strict = settings.db_n_plus_one_strict
        self.tagging = settings.db_sql_comments
        self.slow = settings.db_sample_slow_ms / 1000 if settings.db_sample_slow_ms > 0 else None
        self.platform_tag = sql_tag(PLATFORM, "")
        self.route_tags: dict[str, tuple[str, str]] = {}
        self.children: dict[tuple[str, str], Histogram] = {}

    def child(self, module: str, operation: str) -> Histogram:
        key = (module, operation)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = m.DB_QUERY_DURATION.labels(module, operation, self.target)
        return found

    def before(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> tuple[str, Any]:
        operation, shape = classify(statement)
        for found in _counting.get():
            found.statements.append(statement)
        scope = current_scope()
        if scope is not None:
            scope.queries += 1
            shapes = scope.shapes
            if shapes is None:
                shapes = scope.shapes = {}
            seen = shapes[shape] = shapes.get(shape, 0) + 1
            if seen == self.threshold:
                self._n_plus_one(scope, shape, seen)
        if context is not None:
            context._obs_started = time.perf_counter()  # type: ignore[attr-defined]
            context._obs_operation = operation  # type: ignore[attr-defined]
        if self.tagging:
            statement += self._tag(scope)
        return statement, parameters

    def _tag(self, scope: ObservationScope | None) -> str:
        if scope is None:
            return self.platform_tag
        # Keyed by the route alone (no tuple to build); the module is checked, not trusted.
        tag = self.route_tags.get(scope.route)
        if tag is None or tag[0] != scope.module:
            tag = self.route_tags[scope.route] = (scope.module, sql_tag(scope.module, scope.route))
        return tag[1]

    def _n_plus_one(self, scope: ObservationScope, shape: str, seen: int) -> None:
        m.DB_N_PLUS_ONE.labels(scope.module, scope.route).inc()
        log.warning(
            "n_plus_one",
            module=scope.module,
            route=scope.route,
            kind=scope.kind,
            executions=seen,
            statement=shape,
        )
        if self.strict:
            raise NPlusOneDetected(
                f"N+1: {scope.route} ({scope.module}) ran this statement {seen} times: {shape}"
            )

    def finish(self, context: ExecutionContext | None, statement: str, parameters: Any) -> None:
        started: float | None = getattr(context, "_obs_started", None)
        if started is None:
            return
        context._obs_started = None  # type: ignore[union-attr]
        scope = current_scope()
        module = scope.module if scope is not None else PLATFORM
        took = time.perf_counter() - started
        self.child(module, context._obs_operation).observe(took)  # type: ignore[union-attr]
        if self.slow is not None and took >= self.slow:
            _keep_sample(statement, parameters, took)

    def after(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        self.finish(context, statement, parameters)

    def failed(self, exception_context: ExceptionContext) -> None:
        # A statement that timed out or failed still took its time: it is the one to see.
        self.finish(
            exception_context.execution_context,
            exception_context.statement or "",
            exception_context.parameters,
        )


def instrument_engine(engine: AsyncEngine, *, target: str, settings: Settings) -> None:
    """Time every statement on ``engine`` and feed the N+1 detector; report its pool."""
    hooks = _StatementHooks(target, settings)
    sync_engine = engine.sync_engine
    # retval: the listener returns the statement to run, with its module/route comment.
    event.listen(sync_engine, "before_cursor_execute", hooks.before, retval=True)
    event.listen(sync_engine, "after_cursor_execute", hooks.after)
    event.listen(sync_engine, "handle_error", hooks.failed)
    pool = sync_engine.pool
    if isinstance(pool, InstrumentedPool):
        pool.target = target
        pool._report()
