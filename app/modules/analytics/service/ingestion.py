"""Ingestion use cases: validate a batch of events as a whole and store it with one insert."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.analytics import metrics, repository
from app.modules.analytics.schemas import (
    EVENT_ADAPTER,
    CheckoutStarted,
    Custom,
    Event,
    EventProblem,
    PageView,
    Search,
    SearchClick,
)
from app.modules.analytics.service import batch_keys
from app.platform.config import Settings
from app.platform.errors import ValidationFailed

# Clients buffer events offline; older than this they are more likely replays than news, and a
# far-off timestamp would also spoil the time order the BRIN index relies on.
MAX_EVENT_AGE = timedelta(days=30)
MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_batch_events: int
    max_properties_bytes: int
    max_properties_keys: int
    max_properties_depth: int
    max_string_length: int

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            max_batch_events=settings.analytics_max_batch_events,
            max_properties_bytes=settings.analytics_max_properties_bytes,
            max_properties_keys=settings.analytics_max_properties_keys,
            max_properties_depth=settings.analytics_max_properties_depth,
            max_string_length=settings.analytics_max_string_length,
        )


def _pydantic_problems(index: int, exc: ValidationError, event_type: object) -> list[EventProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] == event_type:  # the discriminated union's tag, not a field
            loc = loc[1:]
        problems.append(EventProblem(index=index, field=".".join(loc) or None, reason=err["msg"]))
    return problems


def _json_shape(value: Any, depth: int = 1) -> tuple[int, int]:
    """(keys at every level, nesting depth) of a JSON value; a scalar has depth 0."""
    if isinstance(value, dict):
        keys, deepest = len(value), 0
        for item in value.values():
            k, d = _json_shape(item, depth + 1)
            keys, deepest = keys + k, max(deepest, d)
        return keys, max(depth, deepest)
    if isinstance(value, list):
        keys, deepest = 0, 0
        for item in value:
            k, d = _json_shape(item, depth + 1)
            keys, deepest = keys + k, max(deepest, d)
        return keys, max(depth, deepest)
    return 0, 0


def _bad_scalars(value: Any, limit: int, path: str) -> list[tuple[str, str]]:
    """Strings (keys included) too long or holding NUL, and non-finite numbers, in a JSON value.

    PostgreSQL refuses NUL in text and jsonb, and JSON has no NaN: caught here, they would be
    a 500 at insert time instead of a 422 naming the event.
    """
    out: list[tuple[str, str]] = []
    if isinstance(value, str):
        if len(value) > limit:
            out.append((path, f"string longer than {limit} characters"))
        if "\x00" in value:
            out.append((path, "string contains a NUL character"))
    elif isinstance(value, float) and not math.isfinite(value):
        out.append((path, "number is not finite"))
    elif isinstance(value, dict):
        for key, item in value.items():
            out += _bad_scalars(key, limit, f"{path}.{key}"[:200])
            out += _bad_scalars(item, limit, f"{path}.{key}"[:200])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _bad_scalars(item, limit, f"{path}[{i}]")
    return out


def _limit_problems(
    index: int, event: Event, limits: IngestLimits, now: datetime
) -> list[EventProblem]:
    found: list[tuple[str, str]] = []
    for name in ("path", "query", "name"):
        value = getattr(event, name, None)
        if isinstance(value, str):
            found += _bad_scalars(value, limits.max_string_length, name)
    if isinstance(event, Search) and not event.query.strip():
        found.append(("query", "query is blank"))
    properties = getattr(event, "properties", None)
    if properties is not None:
        size = len(json.dumps(properties, separators=(",", ":"), ensure_ascii=False).encode())
        keys, depth = _json_shape(properties)
        most = limits
        if size > most.max_properties_bytes:
            found.append(
                ("properties", f"{size} bytes of JSON; at most {most.max_properties_bytes}")
            )
        if keys > most.max_properties_keys:
            found.append(("properties", f"{keys} keys; at most {most.max_properties_keys}"))
        if depth > most.max_properties_depth:
            found.append(
                ("properties", f"nested {depth} deep; at most {most.max_properties_depth}")
            )
        found += _bad_scalars(properties, limits.max_string_length, "properties")
    if event.occurred_at is not None:
        if event.occurred_at > now + MAX_CLOCK_SKEW:
            found.append(("occurred_at", "is in the future"))
        elif event.occurred_at < now - MAX_EVENT_AGE:
            found.append(("occurred_at", f"is older than {MAX_EVENT_AGE.days} days"))
    return [EventProblem(index=index, field=f, reason=r) for f, r in found]


def validate_batch(raw_events: Sequence[dict[str, Any]], limits: IngestLimits) -> list[Event]:
    """Every event of the batch, validated; or ``ValidationFailed`` naming every bad one."""
    if len(raw_events) > limits.max_batch_events:
        metrics.BATCHES_REJECTED.labels("too_large").inc()
        raise ValidationFailed(
            f"The batch has {len(raw_events)} events; at most {limits.max_batch_events} are "
            "accepted at once",
            errors=[
                {"index": None, "field": "events", "reason": "too many events"},
            ],
        )
    now = datetime.now(UTC)
    events: list[Event] = []
    problems: list[EventProblem] = []
    for index, raw in enumerate(raw_events):
        try:
            event = EVENT_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            problems += _pydantic_problems(index, exc, raw.get("type"))
            continue
        problems += _limit_problems(index, event, limits, now)
        events.append(event)
    if problems:
        metrics.BATCHES_REJECTED.labels("invalid").inc()
        bad = sorted({p.index for p in problems})
        raise ValidationFailed(
            f"{len(bad)} of {len(raw_events)} events are invalid; nothing was stored",
            invalid_indexes=bad,
            errors=[p.model_dump() for p in problems],
        )
    return events


def normalise_query(query: str) -> str:
    """Search terms group by this: case-folded, inner whitespace collapsed, trimmed."""
    return " ".join(query.split()).casefold()


def _columns(
    events: Sequence[Event], user_id: uuid.UUID | None, anonymous_id: str | None
) -> repository.EventColumns:
    cols = repository.EventColumns()
    for event in events:
        cols.type.append(event.type)
        cols.occurred_at.append(event.occurred_at)
        cols.user_id.append(user_id)
        cols.anonymous_id.append(anonymous_id)
        cols.name.append(event.name if isinstance(event, Custom) else None)
        cols.path.append(event.path if isinstance(event, PageView) else None)
        search_id = event.search_id if isinstance(event, Search | SearchClick) else None
        cols.search_id.append(search_id)
        cols.query.append(normalise_query(event.query) if isinstance(event, Search) else None)
        cols.result_count.append(event.result_count if isinstance(event, Search) else None)
        cols.product_id.append(event.product_id if isinstance(event, SearchClick) else None)
        cols.position.append(event.position if isinstance(event, SearchClick) else None)
        props = event.properties if isinstance(event, PageView | CheckoutStarted | Custom) else None
        cols.properties.append(None if props is None else json.dumps(props, allow_nan=False))
    return cols


@dataclass(frozen=True, slots=True)
class Ingested:
    """A batch's answer: how many events it had, what was stored now, whether it was a replay."""

    accepted: int
    counts: dict[str, int]  # stored by this request, per type; empty for a replay
    replayed: bool = False


class IngestionRepository(batch_keys.BatchKeysRepository, Protocol):
    """What ingestion writes (``app.modules.analytics.repository``; fakes in unit tests)."""

    async def insert_events(
        self, session: AsyncSession, columns: repository.EventColumns
    ) -> None: ...

    async def purge_batch_keys(self, session: AsyncSession, limit: int) -> int: ...


class IngestionService:
    """Event batches into the request's session (the primary): validated whole, one insert."""

    def __init__(self, session: AsyncSession, *, repo: IngestionRepository = repository) -> None:
        self.session = session
        self.repo = repo

    async def ingest(
        self,
        raw_events: Sequence[dict[str, Any]],
        *,
        user_id: uuid.UUID | None,
        anonymous_id: str | None,
        limits: IngestLimits,
        key: str | None = None,
    ) -> Ingested:
        """Validate the whole batch, then store it with one statement (once per ``key``)."""
        if user_id is None and anonymous_id is None:
            metrics.BATCHES_REJECTED.labels("no_actor").inc()
            raise ValidationFailed(
                "Send an access token or an anonymous_id: every event needs someone who did it",
                errors=[{"index": None, "field": "anonymous_id", "reason": "required"}],
            )
        events = validate_batch(raw_events, limits)
        if key is not None:
            claim = await batch_keys.claim(
                self.session,
                self.repo,
                scope=batch_keys.scope_of(user_id, anonymous_id),
                key=key,
                digest=batch_keys.fingerprint(raw_events, anonymous_id),
                accepted=len(events),
            )
            if claim.stored_before is not None:
                return Ingested(accepted=claim.stored_before, counts={}, replayed=True)
        await self.repo.insert_events(self.session, _columns(events, user_id, anonymous_id))
        counts: dict[str, int] = {}
        for event in events:
            counts[event.type] = counts.get(event.type, 0) + 1
        return Ingested(accepted=len(events), counts=counts)

    async def purge_expired_keys(self, *, limit: int) -> int:
        """Delete up to ``limit`` expired batch keys, oldest first; how many went (flush only)."""
        return await self.repo.purge_batch_keys(self.session, limit)

    @staticmethod
    def count_stored(counts: dict[str, int]) -> None:
        """Count stored events for Prometheus (call once the batch is committed)."""
        for event_type, n in counts.items():
            metrics.EVENTS.labels(event_type).inc(n)
