"""Outbox fixtures: a probe event, a side-effect table, dispatchers on their own registries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.platform.config import Settings
from app.platform.events import Delivery, Event, ListenerRegistry, publish
from app.platform.events.dispatcher import Dispatcher
from app.platform.events.policy import DeliveryPolicy


class ProbeHappened(Event):
    """A test-only event type."""

    name: ClassVar[str] = "tests.probe_happened"
    version: ClassVar[int] = 1

    seq: int
    run: str


# The listeners' side effect: one row per handled delivery, deliberately without a unique key,
# so a delivery handled twice shows up as two rows.
EFFECT_TABLE = """
CREATE TABLE IF NOT EXISTS test_event_effect (
    n bigserial PRIMARY KEY,
    delivery_id uuid NOT NULL,
    event_id uuid NOT NULL,
    listener text NOT NULL,
    seq int NOT NULL,
    worker text NOT NULL DEFAULT ''
)
"""


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(str(settings.database_url))
    async with eng.begin() as conn:
        await conn.execute(text(EFFECT_TABLE))
    yield eng
    await eng.dispose()


def fast_policy(**overrides: float) -> DeliveryPolicy:
    values: dict[str, float] = {
        "concurrency": 8,
        "poll_interval_seconds": 0.05,
        "timeout_seconds": 5.0,
        "max_attempts": 3,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 1.0,
        "gauge_interval_seconds": 0.1,
    }
    values.update(overrides)
    return DeliveryPolicy(**values)  # type: ignore[arg-type]


async def record_effect(delivery: Delivery, seq: int, worker: str = "") -> None:
    await delivery.session.execute(
        text(
            "INSERT INTO test_event_effect (delivery_id, event_id, listener, seq, worker)"
            " VALUES (:d, :e, :l, :s, :w)"
        ),
        {"d": delivery.id, "e": delivery.event_id, "l": delivery.listener, "s": seq, "w": worker},
    )


def effect_listener(worker: str = "") -> Callable[[ProbeHappened, Delivery], Awaitable[None]]:
    async def handle(event: ProbeHappened, delivery: Delivery) -> None:
        await record_effect(delivery, event.seq, worker)

    return handle


@dataclass
class Probe:
    """Names unique to one test, so leftovers of other tests never match."""

    engine: AsyncEngine
    settings: Settings
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def listener(self, role: str) -> str:
        return f"tests.{role}_{self.tag}"

    async def publish(
        self, registry: ListenerRegistry, seqs: range | list[int], *, commit: bool = True
    ) -> list[uuid.UUID]:
        async with AsyncSession(self.engine) as session:
            ids = [
                await publish(session, ProbeHappened(seq=s, run=self.tag), registry=registry)
                for s in seqs
            ]
            if commit:
                await session.commit()
            else:
                await session.rollback()
        return ids

    async def scalar(self, sql: str, **params: object) -> object:
        async with self.engine.connect() as conn:
            return await conn.scalar(text(sql), params)

    async def effects(self, listener: str) -> list[tuple[uuid.UUID, int]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT event_id, seq FROM test_event_effect WHERE listener = :l"),
                {"l": listener},
            )
            return [(r[0], r[1]) for r in rows]

    async def statuses(self, listener: str) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT status, count(*) FROM platform_event_delivery"
                    " WHERE listener = :l GROUP BY status"
                ),
                {"l": listener},
            )
            return {r[0]: r[1] for r in rows}

    async def delivery(self, listener: str) -> dict[str, object]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, status, attempts, last_error, finished_at"
                        " FROM platform_event_delivery WHERE listener = :l"
                    ),
                    {"l": listener},
                )
            ).one()
            return dict(row._mapping)


@pytest.fixture
def probe(engine: AsyncEngine, settings: Settings) -> Probe:
    return Probe(engine, settings)


@asynccontextmanager
async def running(*dispatchers: Dispatcher) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(d.run(drain_seconds=5)) for d in dispatchers]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(d.listening.wait() for d in dispatchers)), timeout=60
        )
        yield
    finally:
        for d in dispatchers:
            d.stop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
