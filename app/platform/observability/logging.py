"""Structured logging: JSON outside development, every line carrying the request id.

The access line (one per request, ``access()``) has a path of its own when lines are JSON: it is
rendered straight from the middleware's fields into the same JSON the processor chain would make
(same keys, same order) and handed to the standard library as one record that the formatter
passes through. The general path (a structlog bound logger: the processor chain, a caller-frame
walk, then ``ProcessorFormatter`` copying the record and running its own chain) costs ~90 µs a
line, several times the request it describes on a trivial endpoint.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
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
            structlog.processors.format_exc_info if settings.json_logs else _identity,
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


def _identity(_: Any, __: str, event_dict: Any) -> Any:
    return event_dict


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
