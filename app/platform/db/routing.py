"""Where a read session runs: the replica when it is healthy and has replayed the caller's writes.

The decision is taken at the session's first statement, not when it is created: by then every
dependency of the handler has run, the caller's principal included, whatever the parameter order.
Writes, ``SELECT ... FOR UPDATE`` and transactions belong to the primary session; the read session
runs READ ONLY on either node, so one of them arriving here fails loudly instead of being rolled
back in silence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from app.platform.db import metrics
from app.platform.db.failures import is_node_failure, is_unavailable
from app.platform.db.lsn import lsn_to_int
from app.platform.db.replica import ReplicaMonitor

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReadRequirement:
    """What the caller must see: a presented token's position and/or their remembered write."""

    token_lsn: int | None = None
    token_invalid: bool = False
    remembered_lsn: int | None = None


@dataclass(frozen=True, slots=True)
class Route:
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Plan:
    route: Route
    # When set, the replica must be asked whether it has replayed this far before it may serve.
    verify_lsn: int | None = None
    behind_reason: str = metrics.REASON_TOKEN_NOT_REPLAYED


class ReadRouter:
    """The routing rules, over read-only views of the two engines (they share their pools)."""

    def __init__(
        self,
        primary: AsyncEngine,
        replica: AsyncEngine | None,
        monitor: ReplicaMonitor,
        *,
        enabled: bool,
    ) -> None:
        self.primary = primary.execution_options(postgresql_readonly=True)
        self.replica = (
            replica.execution_options(postgresql_readonly=True) if replica is not None else None
        )
        self.monitor = monitor
        self.enabled = enabled

    def plan(self, requirement: ReadRequirement) -> _Plan:
        if self.replica is None:
            return _Plan(Route(metrics.TARGET_PRIMARY, metrics.REASON_NO_REPLICA))
        if not self.enabled:
            return _Plan(Route(metrics.TARGET_PRIMARY, metrics.REASON_DISABLED))
        if requirement.token_invalid:
            return _Plan(Route(metrics.TARGET_PRIMARY, metrics.REASON_TOKEN_INVALID))
        if not self.monitor.state.healthy:
            return _Plan(Route(metrics.TARGET_PRIMARY, metrics.REASON_UNHEALTHY))
        required, behind = requirement.token_lsn, metrics.REASON_TOKEN_NOT_REPLAYED
        remembered = requirement.remembered_lsn
        if remembered is not None and (required is None or remembered > required):
            required, behind = remembered, metrics.REASON_WRITE_NOT_REPLAYED
        replica = Route(metrics.TARGET_REPLICA, metrics.REASON_REPLICA)
        if required is not None and not self.monitor.replayed(required):
            # The last check is older than the write: ask the replica itself. That costs one
            # round trip to the replica (never the primary), and right after a write it usually
            # answers "yes", so the read stays off the primary.
            return _Plan(replica, verify_lsn=required, behind_reason=behind)
        return _Plan(replica)


class RoutedSyncSession(Session):
    """The sync half of a read session: binds every statement to the engine the route chose."""

    route_bind: Engine | None = None

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        if self.route_bind is not None:
            return self.route_bind
        return super().get_bind(*args, **kwargs)


# Routed to the primary only because the replica is behind the caller: the replica may still serve
# when the primary cannot.
_BEHIND_REASONS = frozenset({metrics.REASON_TOKEN_NOT_REPLAYED, metrics.REASON_WRITE_NOT_REPLAYED})


def _no_requirement() -> ReadRequirement:
    return ReadRequirement()


class RoutedReadSession(AsyncSession):
    """A session for reads: routed at its first statement; a replica failure is retried once on
    the primary, so the caller never sees it."""

    sync_session_class = RoutedSyncSession

    def __init__(
        self,
        bind: AsyncEngine | None = None,
        *,
        router: ReadRouter,
        requirement: Callable[[], ReadRequirement] = _no_requirement,
        **kwargs: Any,
    ) -> None:
        super().__init__(bind, **kwargs)
        self._router = router
        self._requirement = requirement
        self.route: Route | None = None
        self._counted = False

    # -- the statements a read uses ----------------------------------------------------------
    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run(lambda: AsyncSession.execute(self, *args, **kwargs))

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run(lambda: AsyncSession.scalar(self, *args, **kwargs))

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run(lambda: AsyncSession.get(self, *args, **kwargs))

    async def get_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run(lambda: AsyncSession.get_one(self, *args, **kwargs))

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run(lambda: AsyncSession.stream(self, *args, **kwargs))

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        await self._run(lambda: AsyncSession.refresh(self, *args, **kwargs))

    async def connection(self, *args: Any, **kwargs: Any) -> Any:
        await self._ensure_routed()
        return await AsyncSession.connection(self, *args, **kwargs)

    # -- routing -----------------------------------------------------------------------------
    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        await self._ensure_routed()
        assert self.route is not None
        if self.route.target != metrics.TARGET_REPLICA:
            if self.route.reason not in _BEHIND_REASONS:
                return await call()
            try:
                return await call()
            except Exception as exc:
                if not is_unavailable(exc) or not self._router.monitor.state.healthy:
                    raise
                await self._serve_behind()
            return await call()
        try:
            return await call()
        except Exception as exc:
            if not is_node_failure(exc):
                raise
            await self._fall_back(exc)
        return await call()

    async def _ensure_routed(self) -> None:
        if self.route is not None:
            return
        plan = self._router.plan(self._requirement())
        if plan.route.target == metrics.TARGET_PRIMARY:
            self._decide(self._router.primary, plan.route)
            return
        assert self._router.replica is not None
        self._decide(self._router.replica, plan.route)
        if plan.verify_lsn is None:
            return
        try:
            replay = await AsyncSession.scalar(self, text("SELECT pg_last_wal_replay_lsn()::text"))
        except Exception as exc:
            if not is_node_failure(exc):
                raise
            await self._fall_back(exc)
            return
        replay_lsn = lsn_to_int(replay) if replay else None
        if replay_lsn is not None:
            self._router.monitor.note_replayed(replay_lsn)
        if replay_lsn is None or replay_lsn < plan.verify_lsn:
            await self._release()
            self._decide(self._router.primary, Route(metrics.TARGET_PRIMARY, plan.behind_reason))

    def _decide(self, engine: AsyncEngine, route: Route) -> None:
        assert isinstance(self.sync_session, RoutedSyncSession)
        self.sync_session.route_bind = engine.sync_engine
        self.route = route

    async def rollback(self) -> None:
        # Nothing a read session did needs undoing: a connection that died since its last
        # statement (the replica killed under it) is dropped, not reported to the request.
        await self._release()

    async def close(self) -> None:
        await self._release()
        await super().close()
        # Counted once per session, by where it ended up (after any fall back).
        if self.route is not None and not self._counted:
            self._counted = True
            metrics.READ_ROUTES.labels(self.route.target, self.route.reason).inc()

    async def _release(self) -> None:
        try:
            await AsyncSession.rollback(self)
        except Exception as exc:
            if not is_node_failure(exc):
                raise
            if self.route is not None and self.route.target == metrics.TARGET_REPLICA:
                self._router.monitor.mark_failed(exc)
            # Its connection is gone: the pool must not hand it out again.
            with contextlib.suppress(Exception):
                await AsyncSession.invalidate(self)

    async def _fall_back(self, exc: BaseException) -> None:
        # A recovery conflict cancels one query on a replica that is otherwise fine.
        if getattr(getattr(exc, "orig", None), "sqlstate", None) != "40001":
            self._router.monitor.mark_failed(exc)
        # The replica's connection is dead or dying: drop it rather than return it to the pool.
        with contextlib.suppress(Exception):
            await AsyncSession.invalidate(self)
        self._decide(self._router.primary, Route(metrics.TARGET_PRIMARY, metrics.REASON_ERROR))

    async def _serve_behind(self) -> None:
        # The primary is out of reach and the replica, healthy, has not replayed this caller's
        # last write (it may never: a crash loses what the primary had not sent). A read a little
        # stale for this one caller beats a 503 for the length of the outage.
        with contextlib.suppress(Exception):
            await AsyncSession.invalidate(self)
        assert self._router.replica is not None
        self._decide(
            self._router.replica,
            Route(metrics.TARGET_REPLICA, metrics.REASON_PRIMARY_UNAVAILABLE),
        )

    # -- what a read session never does ------------------------------------------------------
    async def flush(self, objects: Any = None) -> None:
        raise ReadOnlySessionError("a read session never flushes: write with PrimarySession")

    async def commit(self) -> None:
        raise ReadOnlySessionError("a read session never commits: write with PrimarySession")


class ReadOnlySessionError(RuntimeError):
    """A write was attempted through the read session (a programming error)."""
