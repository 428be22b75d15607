"""Where a read session runs: a replica that has replayed the caller's writes, else the primary.

The decision is taken at the session's first statement, not when it is created: by then every
dependency of the handler has run, the caller's principal included, whatever the parameter order.
Writes, ``SELECT ... FOR UPDATE`` and transactions belong to the primary session; the read session
runs READ ONLY on either node, so one of them arriving here fails loudly instead of being rolled
back in silence.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Awaitable, Callable, Sequence
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
class ReplicaNode:
    """One replica as the router sees it: a read-only view of its engine and its monitor."""

    name: str
    engine: AsyncEngine
    monitor: ReplicaMonitor


@dataclass(frozen=True, slots=True)
class _Plan:
    route: Route
    # The replicas to try, in order; empty: the route's target is the primary.
    candidates: tuple[ReplicaNode, ...] = ()
    # What each candidate must have replayed; one whose monitor cannot vouch for it is asked
    # first (per replica: another replica having replayed it proves nothing about this one).
    required_lsn: int | None = None
    behind_reason: str = metrics.REASON_TOKEN_NOT_REPLAYED


class ReadRouter:
    """The routing rules, over read-only views of the engines (they share their pools).

    Reads spread over the healthy replicas in turn. A caller with a write position goes to a
    replica its monitor knows has replayed it, else to each healthy one in order of how far its
    last known replay got, asked one by one; to the primary only when none has replayed it.
    """

    def __init__(
        self,
        primary: AsyncEngine,
        replicas: Sequence[tuple[AsyncEngine, ReplicaMonitor]],
        *,
        enabled: bool,
    ) -> None:
        self.primary = primary.execution_options(postgresql_readonly=True)
        self.replicas = tuple(
            ReplicaNode(monitor.name, engine.execution_options(postgresql_readonly=True), monitor)
            for engine, monitor in replicas
        )
        self.enabled = enabled
        self._turn = itertools.count()

    def plan(self, requirement: ReadRequirement) -> _Plan:
        if not self.replicas:
            return _Plan(Route(metrics.TARGET_PRIMARY, metrics.REASON_NO_REPLICA))
        if not self.enabled:
            return _Plan(Route(metrics.TARGET_PRIMARY, metrics.REASON_DISABLED))
        if requirement.token_invalid:
            return _Plan(Route(metrics.TARGET_PRIMARY, metrics.REASON_TOKEN_INVALID))
        healthy = self.healthy()
        if not healthy:
            return _Plan(Route(metrics.TARGET_PRIMARY, metrics.REASON_UNHEALTHY))
        required, behind = requirement.token_lsn, metrics.REASON_TOKEN_NOT_REPLAYED
        remembered = requirement.remembered_lsn
        if remembered is not None and (required is None or remembered > required):
            required, behind = remembered, metrics.REASON_WRITE_NOT_REPLAYED
        replica = Route(metrics.TARGET_REPLICA, metrics.REASON_REPLICA)
        if required is None:
            return _Plan(replica, healthy)
        # Known to have replayed it first (no round trip); then the likeliest to have, asked.
        # Asking costs one round trip to a replica (never the primary), and right after a write
        # the first one asked usually answers "yes", so the read stays off the primary.
        known = tuple(node for node in healthy if node.monitor.replayed(required))
        unknown = sorted(
            (node for node in healthy if not node.monitor.replayed(required)),
            key=lambda node: -(node.monitor.state.replay_lsn or 0),
        )
        return _Plan(replica, known + tuple(unknown), required, behind)

    def healthy(self) -> tuple[ReplicaNode, ...]:
        """The healthy replicas, starting from the next one's turn."""
        nodes = [node for node in self.replicas if node.monitor.state.healthy]
        if len(nodes) < 2:
            return tuple(nodes)
        start = next(self._turn) % len(nodes)
        return tuple(nodes[start:] + nodes[:start])


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
    """A session for reads: routed at its first statement; a replica failure is retried on the
    next replica that may serve it, then the primary, so the caller never sees it."""

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
        # The replica serving the session, when one does.
        self.node: ReplicaNode | None = None
        self._plan = _Plan(Route(metrics.TARGET_PRIMARY, metrics.REASON_NO_REPLICA))
        self._untried: list[ReplicaNode] = []
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
                if not is_unavailable(exc) or not self._router.healthy():
                    raise
                await self._serve_behind()
            return await call()
        # Each failure moves the read to the next replica that may serve it, then the primary.
        while True:
            try:
                return await call()
            except Exception as exc:
                if self.route.target != metrics.TARGET_REPLICA or not is_node_failure(exc):
                    raise
                await self._fall_back(exc)

    async def _ensure_routed(self) -> None:
        if self.route is not None:
            return
        self._plan = plan = self._router.plan(self._requirement())
        self._untried = list(plan.candidates)
        if not plan.candidates:
            self._decide(self._router.primary, plan.route)
            return
        await self._choose(plan.route)

    async def _choose(self, route: Route) -> None:
        """The first untried replica that is still healthy and has replayed what the caller
        needs (asked when its monitor cannot vouch for it); the primary when none is left."""
        required = self._plan.required_lsn
        while self._untried:
            node = self._untried.pop(0)
            if not node.monitor.state.healthy:  # marked failed by a read since the plan
                continue
            self._decide(node.engine, route, node)
            if required is None or node.monitor.replayed(required):
                return
            try:
                replay = await AsyncSession.scalar(
                    self, text("SELECT pg_last_wal_replay_lsn()::text")
                )
            except Exception as exc:
                if not is_node_failure(exc):
                    raise
                await self._drop(exc)
                route = Route(metrics.TARGET_REPLICA, metrics.REASON_ERROR)
                continue
            replay_lsn = lsn_to_int(replay) if replay else None
            if replay_lsn is not None:
                node.monitor.note_replayed(replay_lsn)
            if replay_lsn is not None and replay_lsn >= required:
                return
            await self._release()
        reason = route.reason if route.reason == metrics.REASON_ERROR else self._plan.behind_reason
        self._decide(self._router.primary, Route(metrics.TARGET_PRIMARY, reason))

    def _decide(self, engine: AsyncEngine, route: Route, node: ReplicaNode | None = None) -> None:
        assert isinstance(self.sync_session, RoutedSyncSession)
        self.sync_session.route_bind = engine.sync_engine
        self.route = route
        self.node = node

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
            if self.node is not None:
                metrics.REPLICA_READS.labels(self.node.name).inc()

    async def _release(self) -> None:
        try:
            await AsyncSession.rollback(self)
        except Exception as exc:
            if not is_node_failure(exc):
                raise
            if self.node is not None:
                self.node.monitor.mark_failed(exc)
            # Its connection is gone: the pool must not hand it out again.
            with contextlib.suppress(Exception):
                await AsyncSession.invalidate(self)

    async def _drop(self, exc: BaseException) -> None:
        """The current replica failed: stop routing to it (unless only the query was cancelled)
        and drop its connection, dead or dying, rather than return it to the pool."""
        # A recovery conflict cancels one query on a replica that is otherwise fine.
        if getattr(getattr(exc, "orig", None), "sqlstate", None) != "40001":
            assert self.node is not None
            self.node.monitor.mark_failed(exc)
        with contextlib.suppress(Exception):
            await AsyncSession.invalidate(self)

    async def _fall_back(self, exc: BaseException) -> None:
        await self._drop(exc)
        await self._choose(Route(metrics.TARGET_REPLICA, metrics.REASON_ERROR))

    async def _serve_behind(self) -> None:
        # The primary is out of reach and no healthy replica has replayed this caller's last
        # write (it may never: a crash loses what the primary had not sent). A read a little
        # stale for this one caller beats a 503 for the length of the outage: the replica that
        # got furthest serves it.
        with contextlib.suppress(Exception):
            await AsyncSession.invalidate(self)
        node = max(self._router.healthy(), key=lambda n: n.monitor.state.replay_lsn or 0)
        self._decide(
            node.engine, Route(metrics.TARGET_REPLICA, metrics.REASON_PRIMARY_UNAVAILABLE), node
        )

    # -- what a read session never does ------------------------------------------------------
    async def flush(self, objects: Any = None) -> None:
        raise ReadOnlySessionError("a read session never flushes: write with PrimarySession")

    async def commit(self) -> None:
        raise ReadOnlySessionError("a read session never commits: write with PrimarySession")


class ReadOnlySessionError(RuntimeError):
    """A write was attempted through the read session (a programming error)."""
