"""Faults switched on at runtime (workshop, load tests, fault drills); production never has any.

A module declares the faults its code can suffer, next to the code that suffers them::

    RECEIPT_FAILS = faults.declare("notifications.receipt_fails", "the receipt listener raises")
    ...
    if RECEIPT_FAILS.hits(user_key):
        raise RuntimeError("injected fault: notifications.receipt_fails")

The switches live in the ``platform_fault`` table, so ``python -m app fault on NAME`` reaches
every app and worker process without a restart: each process reads the table every
``APP_FAULTS_REFRESH_SECONDS``. A switch has a ratio: with a key (a user id, an order id) the same
keys are hit every time, a stable slice of the population (an "8% of users" bug); without one,
each call is hit with that probability. Outside development, test and workshop the refresh never
runs and the CLI refuses, so every switch stays off: the check costs one dict lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Float, String, func, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.config import Settings
from app.platform.db.base import Base
from app.platform.observability.logging import get_logger
from app.platform.observability.registry import gauge

log = get_logger("app.faults")

ALLOWED_ENVIRONMENTS = frozenset({"development", "test", "workshop"})
_SLICES = 10_000

FAULT_ACTIVE = gauge(
    "fault_active",
    "Ratio of an injected fault that is switched on in this process (0: off)",
    ["name"],
    multiprocess_mode="max",
)


class FaultRow(Base):
    __tablename__ = "platform_fault"
    __table_args__ = (CheckConstraint("ratio > 0 AND ratio <= 1", name="ratio"),)

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    ratio: Mapped[float] = mapped_column(Float, nullable=False)
    switched_on_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class FaultsRefused(RuntimeError):
    """Faults were asked for where they are not allowed, or by a name nobody declared."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One declared fault; ``hits()`` says whether this call (or this key) suffers it now."""

    name: str
    description: str

    def ratio(self) -> float:
        return _state.get(self.name, 0.0)

    def hits(self, key: object | None = None) -> bool:
        ratio = _state.get(self.name)
        if not ratio:
            return False
        if key is None:
            return random.random() < ratio  # noqa: S311 - a fault's dice, not a secret
        # crc32 rather than hash(): the same keys in every process and every run.
        slot = zlib.crc32(f"{self.name}:{key}".encode()) % _SLICES
        return slot < ratio * _SLICES


_catalog: dict[str, Fault] = {}
_state: dict[str, float] = {}


def declare(name: str, description: str) -> Fault:
    """Declare a fault (again: idempotent, so a re-imported module gets the same one)."""
    fault = _catalog.get(name)
    if fault is None:
        fault = _catalog[name] = Fault(name, description)
        FAULT_ACTIVE.labels(name=name).set(0)
    return fault


def catalog() -> Mapping[str, Fault]:
    return dict(sorted(_catalog.items()))


def switches() -> Mapping[str, float]:
    """This process's live view of the switched-on faults (empty while none is): a hot path
    holds it and tests its truth before asking any fault."""
    return _state


def apply(state: Mapping[str, float]) -> None:
    """Make ``state`` (name -> ratio of the switches that are on) this process's view."""
    for name in _catalog:
        FAULT_ACTIVE.labels(name=name).set(state.get(name, 0.0))
    _state.clear()
    _state.update({name: ratio for name, ratio in state.items() if ratio > 0})


def check_allowed(env: str) -> None:
    if env not in ALLOWED_ENVIRONMENTS:
        raise FaultsRefused(
            f"faults are refused with APP_ENV={env}: only "
            f"{', '.join(sorted(ALLOWED_ENVIRONMENTS))} may inject them"
        )


async def read(conn: AsyncConnection) -> dict[str, float]:
    rows = await conn.execute(text("SELECT name, ratio FROM platform_fault"))
    return {name: float(ratio) for name, ratio in rows}


async def switch_on(conn: AsyncConnection, name: str, ratio: float = 1.0) -> None:
    if name not in _catalog:
        known = ", ".join(_catalog) or "none"
        raise FaultsRefused(f"no fault is declared as {name!r} (declared: {known})")
    if not 0 < ratio <= 1:
        raise FaultsRefused(f"a fault's ratio is in (0, 1], not {ratio}")
    await conn.execute(
        text(
            "INSERT INTO platform_fault (name, ratio) VALUES (:name, :ratio) "
            "ON CONFLICT (name) DO UPDATE SET ratio = excluded.ratio, switched_on_at = now()"
        ),
        {"name": name, "ratio": ratio},
    )


async def switch_off(conn: AsyncConnection, name: str | None = None) -> int:
    """Switch one fault off, or every fault with ``name=None``; how many were on."""
    if name is None:
        result = await conn.execute(text("DELETE FROM platform_fault"))
    else:
        result = await conn.execute(
            text("DELETE FROM platform_fault WHERE name = :name"), {"name": name}
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def refresh_forever(engine: AsyncEngine, every: float) -> None:
    """Keep this process's view of the switches current (a task of the app and the worker)."""
    seen: dict[str, float] | None = None
    while True:
        try:
            async with engine.connect() as conn:
                state = await read(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be down: keep the last view, try again
            log.warning("faults_refresh_failed", error=type(exc).__name__)
        else:
            if state != seen:
                apply(state)
                if seen is not None or state:
                    log.warning("faults_changed", active=state)
                seen = state
        await asyncio.sleep(every)


@dataclass(slots=True)
class Refresh:
    """A process's refresh task and the small engine it reads the switches with."""

    engine: AsyncEngine
    task: asyncio.Task[None]


def start_refresh(settings: Settings) -> Refresh | None:
    """Start reading the switches where faults are allowed; elsewhere nothing runs at all."""
    if settings.env not in ALLOWED_ENVIRONMENTS:
        return None
    # Its own one-connection engine, uninstrumented: the poll is no request's statement.
    # Direct: its statements are cached across polls, which a transaction pooler would break.
    engine = create_async_engine(settings.direct_database_url, pool_size=1, max_overflow=0)
    task = asyncio.create_task(
        refresh_forever(engine, settings.faults_refresh_seconds), name="faults-refresh"
    )
    return Refresh(engine, task)


async def stop_refresh(refresh: Refresh | None) -> None:
    if refresh is None:
        return
    refresh.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await refresh.task
    await refresh.engine.dispose()
