"""The dispatcher: claims pending deliveries and hands each to its listener.

Claims use ``FOR UPDATE SKIP LOCKED``, so any number of dispatchers (in app processes and in
``python -m app worker`` processes) share the work without handing one delivery to two of them at
once. A claim is a lease: it bumps the attempt counter and pushes ``available_at`` past the
listener's timeout. A dispatcher that dies mid-delivery leaves the lease to run out, and another
dispatcher takes the delivery over. The attempt number is the fencing token: an attempt commits
its work only while the delivery is still pending at that attempt, so a superseded attempt (its
lease ran out and the delivery was claimed again) rolls back instead of doubling a side effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.platform.config import Settings
from app.platform.db.pooling import connect_args
from app.platform.events import admin
from app.platform.events.batching import DoneMarker
from app.platform.events.lanes import Claim as _Claim
from app.platform.events.lanes import Lane
from app.platform.events.lanes import Permanent as _Permanent
from app.platform.events.metrics import DELIVERIES, DELIVERY_DURATION, OUTBOX_OLDEST_PENDING_AGE
from app.platform.events.metrics import OUTBOX_PENDING as PENDING_GAUGE
from app.platform.events.outbox import NOTIFY_CHANNEL
from app.platform.events.policy import DeliveryPolicy
from app.platform.events.registry import REGISTRY, ListenerRegistry
from app.platform.events.statements import CLAIM as _CLAIM
from app.platform.events.statements import MARK_DONE as _MARK_DONE
from app.platform.events.statements import MARK_FAILED as _MARK_FAILED
from app.platform.events.statements import MARK_RETRY as _MARK_RETRY
from app.platform.events.types import Delivery, Event, Listener, Retry
from app.platform.events.wakeup import Wakeup
from app.platform.listen import listen_dsn
from app.platform.observability.context import observe
from app.platform.observability.logging import get_logger
from app.platform.observability.sql import instrument_engine

log = get_logger("app.events")


class Dispatcher:
    """Delivers the outbox to the listeners of ``registry`` until ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        registry: ListenerRegistry | None = None,
        *,
        policy: DeliveryPolicy | None = None,
        name: str = "dispatcher",
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else REGISTRY
        self.policy = policy or DeliveryPolicy.from_settings(settings)
        self.name = name
        # Its own pools. Deliveries: one connection per lane plus overflow for lanes falling
        # back to a transaction per delivery; instrumented, so listeners' statements are timed
        # and N+1-checked per delivery like a request's. Control (claims, marks outside a lane,
        # gauges, pruning): uninstrumented, so an idle dispatcher adds nothing to query metrics.
        self.engine = _engine(settings, name, self.policy.concurrency, overflow=4)
        instrument_engine(self.engine, target="primary", settings=settings)
        self.control = _engine(settings, f"{name}-control", 3, overflow=self.policy.concurrency)
        self.wakeup = Wakeup(
            listen_dsn(settings),
            NOTIFY_CHANNEL,
            connect_timeout=settings.db_connect_timeout_seconds,
        )
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._marker = DoneMarker(self.control)
        self.lease = self._lease()

    @property
    def listening(self) -> asyncio.Event:
        """Set while the LISTEN connection is up (tests and benchmarks wait for it)."""
        return self.wakeup.connected

    def _lease(self) -> float:
        """Seconds a claim holds a delivery: the longest listener timeout plus the grace."""
        listeners = [x for x in map(self.registry.get, self.registry.names()) if x]
        longest = max(map(self.policy.timeout_for, listeners), default=self.policy.timeout_seconds)
        return longest + self.policy.lease_grace_seconds

    def stop(self) -> None:
        self._stopping.set()
        self.wakeup.event.set()
        self._slot_freed.set()

    async def run(self, drain_seconds: float = 10.0) -> None:
        """Deliver until ``stop()``; then let running deliveries finish for ``drain_seconds``."""
        names = self.registry.names()
        self.lease = self._lease()
        helpers = [
            asyncio.create_task(self.wakeup.run(), name=f"{self.name}-listen"),
            asyncio.create_task(self._housekeeping(), name=f"{self.name}-housekeeping"),
            asyncio.create_task(self._marker.run(), name=f"{self.name}-marker"),
        ]
        log.info("dispatcher_started", dispatcher=self.name, listeners=names)
        try:
            if names:
                await self._loop(names)
            else:
                await self._stopping.wait()
        finally:
            if self._inflight:
                _, pending = await asyncio.wait(self._inflight, timeout=drain_seconds)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.engine.dispose()
            await self.control.dispose()
            log.info("dispatcher_stopped", dispatcher=self.name)

    async def _loop(self, names: list[str]) -> None:
        # ``concurrency`` lanes run at once, each up to ``batch_size`` deliveries in sequence.
        concurrency, batch = self.policy.concurrency, self.policy.batch_size
        # Under load, claim in batches rather than one row per finished lane.
        refill_at = max(1, concurrency // 4)
        while not self._stopping.is_set():
            free = concurrency - len(self._inflight)
            more = False
            if free >= refill_at:
                # Cleared before the claim: a NOTIFY that lands during it triggers another.
                self.wakeup.event.clear()
                claimed_at = time.monotonic()
                try:
                    claims = await self._claim(names, free * batch, self.lease)
                except Exception:
                    log.exception("events_claim_failed", dispatcher=self.name)
                    claims = []
                    await self._sleep(self._stopping, self.policy.poll_interval_seconds)
                # Round robin: with a short backlog every delivery gets a lane of its own (as
                # many listeners run at once as before); a long one fills the lanes.
                lanes = min(free, len(claims))
                for i in range(lanes):
                    task = asyncio.create_task(self._run_lane(claims[i::lanes], claimed_at))
                    self._inflight.add(task)
                    task.add_done_callback(self._finished)
                more = len(claims) == free * batch
            if more or free < refill_at:
                self._slot_freed.clear()
                await self._sleep(self._slot_freed, self.policy.poll_interval_seconds)
            else:
                await self._sleep(self.wakeup.event, self.policy.poll_interval_seconds)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_freed.set()

    @staticmethod
    async def _sleep(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    async def _claim(self, names: list[str], limit: int, lease: float) -> list[_Claim]:
        async with self.control.begin() as conn:
            rows = await conn.execute(_CLAIM, {"listeners": names, "limit": limit, "lease": lease})
            return [_Claim(*row) for row in rows]

    async def _run_lane(self, claims: list[_Claim], claimed_at: float) -> None:
        if len(claims) == 1:
            await self._deliver(claims[0])
        else:
            await Lane(self, claims, claimed_at).run()

    async def _deliver(self, claim: _Claim) -> None:
        """One delivery in a transaction of its own."""
        listener = self.registry.get(claim.listener)
        if listener is None:  # unsubscribed since the claim; the lease returns it
            return
        with observe(module=listener.module, route=f"listener:{listener.name}", kind="event"):
            started = time.perf_counter()
            outcome = await self._attempt(listener, claim)
            DELIVERY_DURATION.labels(listener=listener.name).observe(time.perf_counter() - started)
            if outcome is not None:
                DELIVERIES.labels(listener=listener.name, outcome=outcome).inc()

    async def _attempt(self, listener: Listener[Event], claim: _Claim) -> str | None:
        """One attempt; returns the outcome (``None`` when superseded by a newer attempt)."""
        max_attempts = self.policy.max_attempts_for(listener)
        params: dict[str, Any] = {"id": claim.id, "attempt": claim.attempt}
        if claim.attempt > max_attempts:
            # The previous attempt's dispatcher died holding the lease: it counted.
            return await self._fail(listener, claim, "the dispatcher running the last attempt died")
        delivery = Delivery(
            id=claim.id,
            event_id=claim.event_id,
            listener=claim.listener,
            attempt=claim.attempt,
            published_at=claim.published_at,
            session_factory=self._new_session,
        )
        timeout = asyncio.timeout(self.policy.timeout_for(listener))
        try:
            event = self._decode(listener, claim)
            async with timeout:
                await listener.handler(event, delivery)
                session = delivery.opened_session
                if session is None:
                    # No database work to commit with the mark: mark it with others.
                    return "delivered" if await self._marker.mark(claim.id, claim.attempt) else None
                marked = await session.execute(_MARK_DONE, params)
            return await self._commit_if_current(session, _rowcount(marked), claim, "delivered")
        except Retry as exc:
            # The listener's work stays; the delivery comes back after the backoff.
            error = _describe(exc)
            session = delivery.session
            if claim.attempt >= max_attempts:
                marked = await session.execute(_MARK_FAILED, {**params, "error": error})
                outcome = "failed"
            else:
                delay = self.policy.backoff(claim.attempt)
                marked = await session.execute(
                    _MARK_RETRY, {**params, "delay": delay, "error": error}
                )
                outcome = "retry"
            return await self._commit_if_current(session, _rowcount(marked), claim, outcome)
        except _Permanent as exc:
            await _rollback(delivery.opened_session)
            return await self._fail(listener, claim, str(exc))
        except Exception as exc:
            await _rollback(delivery.opened_session)
            error = self._error_of(listener, claim, exc, timeout.expired())
            if claim.attempt >= max_attempts:
                return await self._fail(listener, claim, error)
            return await self._retry(claim, error)
        finally:
            if delivery.opened_session is not None:
                await delivery.opened_session.close()

    def _new_session(self) -> AsyncSession:
        return AsyncSession(self.engine, expire_on_commit=False, autoflush=False)

    async def _commit_if_current(
        self, session: AsyncSession, marked: int, claim: _Claim, outcome: str
    ) -> str | None:
        if marked != 1:
            await session.rollback()
            log.warning("event_delivery_superseded", delivery_id=str(claim.id))
            return None
        await session.commit()
        return outcome

    def _decode(self, listener: Listener[Event], claim: _Claim) -> Event:
        kind = listener.event
        if (claim.event_name, claim.event_version) != (kind.name, kind.version):
            raise _Permanent(
                f"listener {listener.name} reads {kind.name} v{kind.version},"
                f" the event is {claim.event_name} v{claim.event_version}"
            )
        try:
            return kind.model_validate(claim.payload)
        except ValueError as exc:
            raise _Permanent(f"the payload does not match {kind.__name__}: {exc}") from exc

    def _error_of(
        self, listener: Listener[Event], claim: _Claim, exc: Exception, timed_out: bool
    ) -> str:
        """Log a failed attempt; returns the error to record."""
        if timed_out:
            error = f"timed out after {self.policy.timeout_for(listener)}s"
        else:
            error = _describe(exc)
        log.warning(
            "event_delivery_failed",
            listener=listener.name,
            delivery_id=str(claim.id),
            attempt=claim.attempt,
            error=error,
            exc_info=not timed_out,
        )
        return error

    def _gave_up(self, listener: Listener[Event], claim: _Claim, error: str) -> None:
        log.error(
            "event_delivery_gave_up",
            listener=listener.name,
            delivery_id=str(claim.id),
            event_id=str(claim.event_id),
            attempts=claim.attempt,
            error=error,
        )

    async def _retry(self, claim: _Claim, error: str) -> str | None:
        delay = self.policy.backoff(claim.attempt)
        params: dict[str, Any] = {
            "id": claim.id,
            "attempt": claim.attempt,
            "delay": delay,
            "error": error,
        }
        async with self.control.begin() as conn:
            marked = await conn.execute(_MARK_RETRY, params)
        return "retry" if marked.rowcount == 1 else None

    async def _fail(self, listener: Listener[Event], claim: _Claim, error: str) -> str | None:
        params: dict[str, Any] = {"id": claim.id, "attempt": claim.attempt, "error": error}
        async with self.control.begin() as conn:
            marked = await conn.execute(_MARK_FAILED, params)
        if marked.rowcount != 1:
            return None
        self._gave_up(listener, claim, error)
        return "failed"

    async def _housekeeping(self) -> None:
        """Refresh the outbox gauges, and prune finished work now and then."""
        retention = timedelta(seconds=self.policy.retention_seconds)
        next_prune = time.monotonic()
        while True:
            try:
                async with self.control.begin() as conn:
                    counts, oldest = await admin.pending_stats(conn)
                for name in {*self.registry.names(), *counts}:
                    PENDING_GAUGE.labels(listener=name).set(counts.get(name, 0))
                OUTBOX_OLDEST_PENDING_AGE.set(oldest)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self.policy.prune_interval_seconds
                    async with self.control.begin() as conn:
                        deliveries, events = await admin.prune(conn, retention)
                    if deliveries or events:
                        log.info("outbox_pruned", deliveries=deliveries, events=events)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("events_housekeeping_failed", dispatcher=self.name)
            await asyncio.sleep(self.policy.gauge_interval_seconds)


def _engine(settings: Settings, name: str, pool_size: int, *, overflow: int) -> AsyncEngine:
    # No pre-ping: a dead connection fails one attempt (retried) rather than cost each a trip.
    return create_async_engine(
        str(settings.database_url),
        pool_size=pool_size,
        max_overflow=overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args=connect_args(settings, application_name=f"{settings.service_name}:{name}"),
    )


async def _rollback(session: AsyncSession | None) -> None:
    """Roll back an attempt whose connection may be broken (a cut query, a lost server)."""
    if session is None:
        return
    try:
        await session.rollback()
    except Exception:
        log.warning("event_delivery_rollback_failed", exc_info=True)
        await session.invalidate()


def _rowcount(result: Result[Any]) -> int:
    return cast("CursorResult[Any]", result).rowcount


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
