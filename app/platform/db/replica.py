"""Each replica's health: reachability and replay lag, checked in the background."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.platform.config import Settings
from app.platform.db import metrics
from app.platform.db.lsn import int_to_lsn, lsn_to_int

log = structlog.stdlib.get_logger("app.db.replica")

# Against the primary's position when we have it; without the primary, against what the replica
# has received (a primary outage must not take the replica's reads down with it).
_REPLICA_SQL = text(
    """
    SELECT pg_is_in_recovery(),
           pg_last_wal_replay_lsn()::text,
           pg_wal_lsn_diff(
               coalesce(CAST(CAST(:primary AS text) AS pg_lsn), pg_last_wal_receive_lsn()),
               pg_last_wal_replay_lsn()
           )::bigint,
           extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
    """
)


# An idle primary's insert position can sit just past a WAL page header that the replica's replay
# position stops short of; that far behind is caught up, for the lag-in-seconds estimate.
_HEADER_SLACK = 40


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """What the last check saw. ``healthy`` decides whether reads may go to the replica."""

    configured: bool
    checked: bool = False
    reachable: bool = False
    healthy: bool = False
    in_recovery: bool | None = None
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    error: str | None = None
    checked_at: float | None = None  # unix time

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["replay_lsn"] = int_to_lsn(self.replay_lsn) if self.replay_lsn is not None else None
        data["status"] = (
            "not_configured" if not self.configured else "up" if self.reachable else "down"
        )
        return data


class ReplicaMonitor:
    """Checks one replica every ``db_replica_check_interval_seconds`` and keeps the result.

    Lag in seconds is only measured when bytes are behind (an idle primary is not lag) and is the
    tighter of two upper bounds on how stale the replica is: the age of its last replayed commit,
    and the age of the newest earlier check whose primary position it has since replayed. The
    first alone calls a replica stale when a write arrives after a long idle spell.
    """

    def __init__(
        self,
        primary: AsyncEngine,
        replica: AsyncEngine | None,
        settings: Settings,
        *,
        name: str = "replica",
    ) -> None:
        self.name = name
        self._primary = primary
        self._replica = replica
        self.interval = settings.db_replica_check_interval_seconds
        self.max_lag_bytes = settings.db_replica_max_lag_bytes
        self.max_lag_seconds = settings.db_replica_max_lag_seconds
        self.timeout = settings.readiness_timeout_seconds
        self._state = ReplicaState(configured=replica is not None)
        # (monotonic time, primary position) of recent checks, for the lag-in-seconds bound.
        self._history: deque[tuple[float, int]] = deque(maxlen=256)
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> ReplicaState:
        return self._state

    def replayed(self, lsn: int) -> bool:
        """Whether the replica had replayed ``lsn`` at the last thing we heard from it."""
        replay = self._state.replay_lsn
        return replay is not None and replay >= lsn

    def note_replayed(self, lsn: int) -> None:
        """A read saw the replica at ``lsn``: later readers need not ask again."""
        replay = self._state.replay_lsn
        if self._state.reachable and (replay is None or lsn > replay):
            self._state = replace(self._state, replay_lsn=lsn)

    def mark_failed(self, error: BaseException) -> None:
        """A read could not reach the replica: stop routing to it until a check says otherwise."""
        if self._replica is None:
            return
        self._set(
            replace(self._state, reachable=False, healthy=False, error=_describe(error)),
        )

    async def check(self) -> ReplicaState:
        if self._replica is None:
            return self._state
        primary_lsn = await self._primary_position()
        try:
            async with asyncio.timeout(self.timeout), self._replica.connect() as conn:
                row = (
                    await conn.execute(
                        _REPLICA_SQL,
                        {"primary": int_to_lsn(primary_lsn) if primary_lsn is not None else None},
                    )
                ).one()
        except Exception as exc:
            state = ReplicaState(
                configured=True,
                checked=True,
                reachable=False,
                healthy=False,
                replay_lsn=self._state.replay_lsn,
                error=_describe(exc),
                checked_at=time.time(),
            )
            self._set(state)
            return state
        now = time.monotonic()
        in_recovery, replay_text, diff, xact_age = row
        replay_lsn = lsn_to_int(replay_text) if replay_text else None
        lag_bytes = max(0, int(diff)) if diff is not None else None
        lag_seconds = 0.0
        if lag_bytes is not None and lag_bytes > _HEADER_SLACK and replay_lsn is not None:
            lag_seconds = self._lag_seconds(now, replay_lsn, xact_age)
        if primary_lsn is not None:
            self._history.append((now, primary_lsn))
        error = self._unhealthy(bool(in_recovery), lag_bytes, lag_seconds)
        state = ReplicaState(
            configured=True,
            checked=True,
            reachable=True,
            healthy=error is None,
            in_recovery=bool(in_recovery),
            replay_lsn=replay_lsn,
            lag_bytes=lag_bytes,
            lag_seconds=round(lag_seconds, 3),
            error=error,
            checked_at=time.time(),
        )
        self._set(state)
        return state

    async def _primary_position(self) -> int | None:
        try:
            async with asyncio.timeout(self.timeout), self._primary.connect() as conn:
                # The insert position, like the consistency tokens: commits not yet flushed
                # (synchronous_commit=off) are lag too.
                return lsn_to_int(
                    str(await conn.scalar(text("SELECT pg_current_wal_insert_lsn()::text")))
                )
        except Exception as exc:  # the primary's own health is /readyz's business
            log.debug("replica check: primary position unavailable", error=_describe(exc))
            return None

    def _unhealthy(
        self, in_recovery: bool, lag_bytes: int | None, lag_seconds: float
    ) -> str | None:
        """Why the replica may not serve reads now; None when it may."""
        if not in_recovery:
            # Promoted or misconfigured: it no longer follows our primary, so it goes stale.
            return "not in recovery: the replica does not follow the primary"
        if lag_bytes is None:
            return "replay position unknown"
        if lag_bytes > self.max_lag_bytes:
            return f"behind by {lag_bytes} bytes (limit {self.max_lag_bytes})"
        if lag_seconds > self.max_lag_seconds:
            return f"behind by {lag_seconds:.1f}s (limit {self.max_lag_seconds:g}s)"
        return None

    def _lag_seconds(self, now: float, replay_lsn: int, xact_age: float | None) -> float:
        bounds = [max(0.0, xact_age)] if xact_age is not None else []
        for at, position in reversed(self._history):
            if position <= replay_lsn + _HEADER_SLACK:
                bounds.append(now - at)
                break
        return min(bounds, default=0.0)

    def _set(self, state: ReplicaState) -> None:
        if state.healthy != self._state.healthy and self._state.checked:
            if state.healthy:
                log.info("replica healthy again: reads return to it", replica=self.name)
            else:
                log.warning(
                    "replica unhealthy: its reads go to the other replicas or the primary",
                    replica=self.name,
                    error=state.error,
                )
        self._state = state
        metrics.REPLICA_HEALTHY.labels(self.name).set(1 if state.healthy else 0)
        # While unreachable the lag gauges keep their last measured value; healthy says why.
        if state.lag_bytes is not None:
            metrics.REPLICA_LAG_BYTES.labels(self.name).set(state.lag_bytes)
        if state.lag_seconds is not None:
            metrics.REPLICA_LAG_SECONDS.labels(self.name).set(state.lag_seconds)

    # -- background ------------------------------------------------------------------------
    async def start(self) -> None:
        """Check once (so the first requests are routed on facts), then keep checking."""
        if self._replica is None or self._task is not None:
            return
        await self._safe_check()
        self._task = asyncio.create_task(self._run(), name=f"replica-health-check:{self.name}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._safe_check()

    async def _safe_check(self) -> None:
        try:
            await self.check()
        except Exception:  # a bug here must not end the checks, or routing freezes
            log.exception("replica check failed")


class ReplicaMonitors:
    """One monitor per configured replica, started, checked and stopped together."""

    def __init__(
        self,
        primary: AsyncEngine,
        replicas: Sequence[tuple[str, AsyncEngine]],
        settings: Settings,
    ) -> None:
        self.all = tuple(
            ReplicaMonitor(primary, engine, settings, name=name) for name, engine in replicas
        )
        # Stands for "the replica" where one is expected (and for none: not configured).
        self.first = self.all[0] if self.all else ReplicaMonitor(primary, None, settings)

    def __iter__(self) -> Iterator[ReplicaMonitor]:
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)

    @property
    def states(self) -> list[ReplicaState]:
        return [monitor.state for monitor in self.all]

    async def check(self) -> list[ReplicaState]:
        """Check every replica at once: one slow replica does not delay the others' verdict."""
        return list(await asyncio.gather(*(monitor.check() for monitor in self.all)))

    async def start(self) -> None:
        await asyncio.gather(*(monitor.start() for monitor in self.all))

    async def stop(self) -> None:
        await asyncio.gather(*(monitor.stop() for monitor in self.all))


def replica_names(urls: Sequence[str]) -> list[str]:
    """A label per replica: ``host:port``, with the database when two share a server."""
    hosts = []
    for url in urls:
        parts = urlsplit(url)
        hosts.append((f"{parts.hostname}:{parts.port or 5432}", parts.path.lstrip("/")))
    names = []
    for host, database in hosts:
        shared = sum(1 for other, _ in hosts if other == host) > 1
        names.append(f"{host}/{database}" if shared else host)
    # Only the same URL twice is left: a list that names a replica twice still gets two labels.
    return [name if names.count(name) == 1 else f"{name}#{i + 1}" for i, name in enumerate(names)]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    detail = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {detail[0][:200]}" if detail else type(exc).__name__
