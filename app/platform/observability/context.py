"""The unit of observation: one HTTP request or one event delivery.

Metrics and the N+1 detector need to know, for every SQL statement, which module and which route
(or listener) it runs for. ``observe()`` opens such a scope; HTTP middleware opens one per request,
the outbox dispatcher one per delivery (``route`` then names the listener: ``listener:<name>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

PLATFORM = "platform"


@dataclass(slots=True)
class ObservationScope:
    module: str
    route: str
    kind: str = "http"  # "http" | "event"
    queries: int = 0
    # normalized statement -> executions; made on the first statement (most requests run none)
    shapes: dict[str, int] | None = None
    # The HTTP request's id, which every log line written for it carries (``logging.py``).
    request_id: str | None = None
    # False for a request with HTTP metrics and the access line off: in context for its request
    # id only; its SQL is then attributed as outside any request (module platform, no count).
    observed: bool = True


# One variable for both: the request id and the observation travel together, one set per request.
_current: ContextVar[ObservationScope | None] = ContextVar("observation_scope", default=None)


def current_scope() -> ObservationScope | None:
    """The observed request or delivery running now, if any."""
    scope = _current.get()
    return scope if scope is not None and scope.observed else None


def current_request_id() -> str | None:
    scope = _current.get()
    return scope.request_id if scope is not None else None


# ``observe()`` without the context manager, for the per-request hot path: the ContextVar's own
# methods, without a Python call around them.
activate: Callable[[ObservationScope], Token[ObservationScope | None]] = _current.set
deactivate: Callable[[Token[ObservationScope | None]], None] = _current.reset


@contextmanager
def observe(module: str, route: str, kind: str = "http") -> Iterator[ObservationScope]:
    scope = ObservationScope(module=module, route=route, kind=kind)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
