"""What travels through the outbox: typed events, the delivery a listener receives, listeners."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession


class Event(BaseModel):
    """A fact a module tells the others, declared in the publishing module's ``interface.py``.

    Subclasses set ``name`` (``<module>.<fact>``, e.g. ``auth.user_registered``) and ``version``;
    the fields are the payload. A change that breaks consumers gets a new version, not an edit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str]
    version: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or "." not in name:
            raise TypeError(f"{cls.__qualname__} needs a ClassVar name like '<module>.<fact>'")
        if not isinstance(cls.version, int) or cls.version < 1:
            raise TypeError(f"{cls.__qualname__}.version must be a positive int")


E = TypeVar("E", bound=Event)


class Retry(Exception):
    """Raised by a listener to keep this attempt's database work and retry with backoff.

    Any other exception rolls the attempt's work back. ``Retry`` is for work that must survive a
    failed attempt, e.g. the record of a failed email send, with the side effect retried later.
    """


class Delivery:
    """One attempt to hand one event to one listener.

    ``id`` is stable across attempts: an idempotent listener keys its side effects on it.
    ``session`` (opened on first use) is on the primary; its work commits in the same
    transaction that marks the delivery done, so database side effects happen exactly once.
    A listener that never touches it costs no transaction of its own: its delivery is marked
    done together with others.
    """

    __slots__ = ("_factory", "_session", "attempt", "event_id", "id", "listener", "published_at")

    def __init__(
        self,
        *,
        id: uuid.UUID,
        event_id: uuid.UUID,
        listener: str,
        attempt: int,
        published_at: datetime,
        session_factory: Callable[[], AsyncSession],
    ) -> None:
        self.id = id
        self.event_id = event_id
        self.listener = listener
        self.attempt = attempt
        self.published_at = published_at
        self._factory = session_factory
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._factory()
        return self._session

    @property
    def opened_session(self) -> AsyncSession | None:
        """The session if the listener used it, else ``None``."""
        return self._session


Handler = Callable[[E, Delivery], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Listener(Generic[E]):
    """A handler subscribed to one event type under a stable name (``<module>.<handler>``)."""

    name: str
    module: str
    event: type[E]
    handler: Handler[E]
    timeout_seconds: float | None = None
    max_attempts: int | None = None
