"""Publishing: an event goes into the outbox inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any, Protocol

from sqlalchemy import Text, bindparam, event, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.platform.events.metrics import EVENTS_PUBLISHED
from app.platform.events.registry import REGISTRY, ListenerRegistry
from app.platform.events.types import Event

NOTIFY_CHANNEL = "platform_outbox"

# One round trip: the event, one delivery row per listener, and a NOTIFY that PostgreSQL sends
# only if and when the transaction commits (and folds into one per transaction).
_PUBLISH = text(
    """
    WITH published AS (
        INSERT INTO platform_outbox_event (id, name, version, payload)
        VALUES (:id, :name, :version, :payload)
    ), deliveries AS (
        INSERT INTO platform_event_delivery (event_id, listener)
        SELECT :id, listener FROM unnest(:listeners) AS listener
    )
    SELECT pg_notify('platform_outbox', '')
    """
).bindparams(
    bindparam("payload", type_=JSONB),
    bindparam("listeners", type_=ARRAY(Text)),
)
_PUBLISH_UNHEARD = text(
    "INSERT INTO platform_outbox_event (id, name, version, payload)"
    " VALUES (:id, :name, :version, :payload)"
).bindparams(bindparam("payload", type_=JSONB))

_COUNTS_KEY = "platform.events.published"


async def publish(
    session: AsyncSession, event: Event, *, registry: ListenerRegistry | None = None
) -> uuid.UUID:
    """Write ``event`` into the outbox in ``session``'s transaction; returns the event id.

    Nothing is delivered unless that transaction commits, and what commits is delivered: to
    every listener subscribed to the event's type (in ``registry``, by default the app's).
    """
    listeners = [x.name for x in (registry or REGISTRY).listeners_for(type(event))]
    event_id = uuid.uuid4()
    params: dict[str, Any] = {
        "id": event_id,
        "name": event.name,
        "version": event.version,
        "payload": event.model_dump(mode="json"),
    }
    if listeners:
        await session.execute(_PUBLISH, {**params, "listeners": listeners})
    else:
        await session.execute(_PUBLISH_UNHEARD, params)
    _count_on_commit(session.sync_session, event.name)
    return event_id


def _count_on_commit(session: Session, name: str) -> None:
    """Count the event once its transaction commits; a rollback publishes (and counts) nothing."""
    counts: Counter[str] | None = session.info.get(_COUNTS_KEY)
    if counts is None:
        counts = session.info[_COUNTS_KEY] = Counter()
        event.listen(session, "after_commit", _flush_counts)
        event.listen(session, "after_rollback", _drop_counts)
    counts[name] += 1


def _flush_counts(session: Session) -> None:
    counts: Counter[str] = session.info.get(_COUNTS_KEY) or Counter()
    for name, n in counts.items():
        EVENTS_PUBLISHED.labels(event=name).inc(n)
    counts.clear()


def _drop_counts(session: Session) -> None:
    counts: Counter[str] | None = session.info.get(_COUNTS_KEY)
    if counts is not None:
        counts.clear()


class EventSink(Protocol):
    """Where a use case puts the events it publishes: the port a unit test fakes."""

    async def publish(self, event: Event) -> uuid.UUID: ...


class Outbox:
    """The session-facing ``EventSink``: events into the outbox of this session's transaction."""

    __slots__ = ("session",)

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def publish(self, event: Event) -> uuid.UUID:
        return await publish(self.session, event)
