"""Structured logging: JSON outside development, every line carrying the request id.

The access line (one per request, ``access()``) has a path of its own when lines are JSON: it is
rendered straight from the middleware's fields into the same JSON the processor chain would make
(same keys, same order) and handed to the standard library as one record that the formatter
passes through. The general path (a structlog bound logger: the processor chain, a caller-frame
walk, then ``ProcessorFormatter`` copying the record and running its own chain) costs ~90 µs a
line, several times the request it describes on a trivial endpoint.

Tracebacks, in either format, are the standard library's plain rendering, without local variables
and cut to a bounded size (``format_exception``). Formatting happens on the event loop of the
process that logs, so it must stay cheap: structlog's default console traceback (rich, with the
locals of every frame) rendered ~1,000 lines in 6.8 s for one SQLAlchemy connection error, and
still 2.2 s without the locals; this one takes about a millisecond. One 500 used to stall every
request of the process for that long.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog
from structlog.processors import _json_fallback_handler

from app.platform.config import Settings
from app.platform.observability.context import current_request_id


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library (uvicorn, SQLAlchemy) through one renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.json_logs
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    global _json_lines
    _json_lines = settings.json_logs
    formatter = _Formatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # exc_info becomes the bounded text here, so neither renderer formats it its own way.
            _EXCEPTION_RENDERER,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The platform writes one access line per request itself (app.access: module, route,
    # status, duration, query count); uvicorn's would be a second, poorer line.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").disabled = True


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """``ProcessorFormatter``, passing through a line ``access()`` rendered already."""

    def format(self, record: logging.LogRecord) -> str:
        rendered: str | None = getattr(record, _RENDERED, None)
        if rendered is not None:
            return rendered
        return super().format(record)


_RENDERED = "_app_rendered"
_ACCESS = "app.access"
_access_stdlib = logging.getLogger(_ACCESS)
_access_structlog = structlog.stdlib.get_logger(_ACCESS)
_json_lines = False
# What JSONRenderer does (json.dumps with structlog's fallback), the encoder made once.
_encode = json.JSONEncoder(default=_json_fallback_handler).encode


def access(fields: dict[str, Any]) -> None:
    """Log the access line ``fields`` (its ``event`` key included) as logger ``app.access``."""
    logger = _access_stdlib
    if not logger.isEnabledFor(logging.INFO):
        return
    if not _json_lines:  # development's console renderer: the general path is fine
        _access_structlog.info(**fields)
        return
    # The processor chain's additions, in its order: bound context, request id (among the
    # fields already), level, logger, timestamp.
    for key, value in structlog.contextvars.get_contextvars().items():
        fields.setdefault(key, value)
    fields["level"] = "info"
    fields["logger"] = _ACCESS
    fields["timestamp"] = datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")
    record = logging.LogRecord(_ACCESS, logging.INFO, __file__, 0, fields, None, None)
    setattr(record, _RENDERED, _encode(fields))
    logger.handle(record)


def add_request_id(_: Any, __: str, event_dict: Any) -> Any:
    """A processor: the id of the HTTP request being served, on every line written for it."""
    request_id = current_request_id()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


# A traceback's bounds: enough for any real stack of this app (a SQLAlchemy error chained to the
# driver's is ~100 lines), never the megabytes a statement's parameters or a loop can make.
MAX_TRACEBACK_LINES = 200
MAX_TRACEBACK_LINE_CHARS = 1000
_HEAD_LINES = 60  # kept from the top (the outermost frames); the rest from the bottom

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def format_exception(exc_info: ExcInfo) -> str:
    """``exc_info`` as the standard library prints it (its chain included, no local variables),
    cut to ``MAX_TRACEBACK_LINES`` lines of at most ``MAX_TRACEBACK_LINE_CHARS`` characters."""
    exc_type, exc, tb = exc_info
    rendered = traceback.TracebackException(
        exc_type, exc, tb, capture_locals=False, max_group_width=5, max_group_depth=3
    ).format()
    lines = "".join(rendered).rstrip("\n").split("\n")
    for i, line in enumerate(lines):
        if len(line) > MAX_TRACEBACK_LINE_CHARS:
            cut = len(line) - MAX_TRACEBACK_LINE_CHARS
            lines[i] = f"{line[:MAX_TRACEBACK_LINE_CHARS]}... [{cut} characters cut]"
    if len(lines) > MAX_TRACEBACK_LINES:
        tail = MAX_TRACEBACK_LINES - _HEAD_LINES - 1
        cut = len(lines) - _HEAD_LINES - tail
        lines = [*lines[:_HEAD_LINES], f"  ... [{cut} lines cut] ...", *lines[-tail:]]
    return "\n".join(lines)


_EXCEPTION_RENDERER = structlog.processors.ExceptionRenderer(format_exception)


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
