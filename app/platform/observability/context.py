"""The unit of observation: one HTTP request or one event delivery.

Metrics and the N+1 detector need to know, for every SQL statement, which module and which route
(or listener) it runs for. ``observe()`` opens such a scope; HTTP middleware opens one per request,
the outbox dispatcher one per delivery (``route`` then names the listener: ``listener:<name>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

PLATFORM = "platform"


@dataclass(slots=True)
class ObservationScope:
    module: str
    route: str
    kind: str = "http"  # "http" | "event"
    queries: int = 0
    shapes: dict[str, int] = field(default_factory=dict)  # normalized statement -> executions


_current: ContextVar[ObservationScope | None] = ContextVar("observation_scope", default=None)


def current_scope() -> ObservationScope | None:
    return _current.get()


def activate(scope: ObservationScope) -> Token[ObservationScope | None]:
    """``observe()`` without the context manager, for the per-request hot path."""
    return _current.set(scope)


def deactivate(token: Token[ObservationScope | None]) -> None:
    _current.reset(token)


@contextmanager
def observe(module: str, route: str, kind: str = "http") -> Iterator[ObservationScope]:
    scope = ObservationScope(module=module, route=route, kind=kind)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
