"""Fakes of the session-facing ports the services take, for the unit layer (no database).

``FakeSession`` stands in for the request's ``AsyncSession`` where a use case only adds, flushes
and refreshes (the statements themselves live in the repositories, which the tests fake in
memory); ``RecordingOutbox`` is the ``EventSink`` a use case publishes into.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.platform.config import Settings
from app.platform.events import Event

E = TypeVar("E", bound=Event)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def unit_settings(**overrides: Any) -> Settings:
    """Settings for a test environment without reading the machine's environment files."""
    return Settings(_env_file=None, env="test", **overrides)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Ids:
    """Predictable ids: 1, 2, 3, ... as UUIDs."""

    def __init__(self) -> None:
        self.issued = 0

    def __call__(self) -> uuid.UUID:
        self.issued += 1
        return uuid.UUID(int=self.issued)


class FakeSession:
    """What a use case does to its session besides the repository: add, flush, refresh."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.added: list[object] = []
        self.flushes = 0
        self.executed: list[tuple[object, object]] = []

    def add(self, obj: object) -> None:
        self.added.append(obj)

    def add_all(self, objs: Iterable[object]) -> None:
        self.added.extend(objs)

    async def flush(self) -> None:
        self.flushes += 1
        for obj in self.added:  # what the database's defaults would have filled in
            if hasattr(obj, "id") and getattr(obj, "id", None) is None:
                obj.id = uuid.uuid4()

    async def refresh(self, obj: object, attribute_names: Iterable[str] | None = None) -> None:
        for name in attribute_names or ():
            if getattr(obj, name, None) is None or name == "updated_at":
                setattr(obj, name, self.clock())

    async def execute(self, statement: object, params: object = None) -> None:
        self.executed.append((statement, params))

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        yield

    async def __aenter__(self) -> AsyncSession:
        return self.as_session()

    async def __aexit__(self, *exc: object) -> None:
        return None

    def as_session(self) -> AsyncSession:
        return cast(AsyncSession, self)


class FakeSessions:
    """A session factory whose every session is the one ``FakeSession``."""

    def __init__(self, session: FakeSession) -> None:
        self.session = session

    def __call__(self) -> FakeSession:
        return self.session

    def begin(self) -> FakeSession:
        return self.session

    def as_factory(self) -> async_sessionmaker[AsyncSession]:
        return cast(async_sessionmaker[AsyncSession], self)


class RecordingOutbox:
    """The ``EventSink`` of a unit test: keeps what was published, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> uuid.UUID:
        self.events.append(event)
        return uuid.uuid4()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]
