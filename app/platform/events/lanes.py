"""Lanes: a claimed batch of deliveries run one after another in one transaction, a savepoint each.

A delivery in its own transaction pays BEGIN, its mark and COMMIT (three round trips and a pool
checkout, most of a cheap listener's cost). A lane shares them: each delivery whose listener
touches ``delivery.session`` gets a ``SAVEPOINT`` (emitted lazily, on the session's first use;
never released, so it costs one round trip), and the lane marks every outcome in one fenced
statement and commits once.

- A listener that raises rolls back to its own savepoint: the deliveries before it keep their
  work, and its retry (or failure) is marked in the same transaction.
- ``Retry`` keeps the savepoint's work.
- A listener cut at its timeout while it awaited something else rolls back its savepoint too. Cut
  in the middle of a statement, SQLAlchemy drops the connection and the lane's transaction with
  it: the lane then falls back to a transaction per delivery for what it had not committed.
- Fencing: the one mark statement matches only attempts that still hold their claim. If one with
  database work was superseded (its lease ran out and another dispatcher claimed it), the lane
  rolls back and runs the rest a transaction per delivery, where each attempt is fenced alone.
- Leases: a lane starts a further delivery in its transaction only while the claim's lease still
  covers that listener's timeout plus half the grace; otherwise it commits, renews the lease of
  what is left (fenced) and goes on in a new transaction.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Float, Integer, Text, Uuid, bindparam, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, AsyncTransaction
from sqlalchemy.orm import Session, SessionTransaction

from app.platform.events.metrics import DELIVERIES, DELIVERY_DURATION
from app.platform.events.policy import DeliveryPolicy
from app.platform.events.registry import ListenerRegistry
from app.platform.events.types import Delivery, Event, Listener, Retry
from app.platform.observability.context import observe
from app.platform.observability.logging import get_logger

log = get_logger("app.events")

# Every outcome of a lane in one statement, fenced like the single marks: a retry stays pending
# with a later ``available_at``; done and failed finish.
_MARK_MANY = text(
    """
    UPDATE platform_event_delivery AS d
    SET status = m.status,
        finished_at = CASE WHEN m.status = 'pending' THEN d.finished_at ELSE now() END,
        available_at = CASE WHEN m.status = 'pending'
                            THEN now() + make_interval(secs => m.delay) ELSE d.available_at END,
        last_error = m.error
    FROM unnest(:ids, :attempts, :statuses, :delays, :errors)
         AS m(id, attempt, status, delay, error)
    WHERE d.id = m.id AND d.attempts = m.attempt AND d.status = 'pending'
    RETURNING d.id
    """
).bindparams(
    bindparam("ids", type_=ARRAY(Uuid)),
    bindparam("attempts", type_=ARRAY(Integer)),
    bindparam("statuses", type_=ARRAY(Text)),
    bindparam("delays", type_=ARRAY(Float)),
    bindparam("errors", type_=ARRAY(Text)),
)
_RENEW = text(
    """
    UPDATE platform_event_delivery AS d
    SET available_at = now() + make_interval(secs => :lease)
    FROM unnest(:ids, :attempts) AS c(id, attempt)
    WHERE d.id = c.id AND d.attempts = c.attempt AND d.status = 'pending'
    RETURNING d.id
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("attempts", type_=ARRAY(Integer)))

_OUTCOME_STATUS = {"delivered": "done", "retry": "pending", "failed": "failed"}


class _LaneSession(Session):
    """A delivery's session inside a lane: joins the lane's transaction behind a savepoint."""


@event.listens_for(_LaneSession, "after_begin")
def _open_savepoint(session: Session, transaction: SessionTransaction, conn: Connection) -> None:
    # Runs when the listener first uses its session: listeners that never do cost nothing.
    name = session.info["savepoint"]
    conn.exec_driver_sql(f"SAVEPOINT {name}")
    session.info["begun"] = True


@dataclass(slots=True)
class _Result:
    claim: Claim
    listener: Listener[Event]
    outcome: str  # delivered | retry | failed
    kept_work: bool  # a savepoint whose work the lane's commit will keep
    error: str | None = None
    delay: float = 0.0


class _Lost(Exception):
    """The lane's transaction is gone (connection dropped, or a listener rolled it all back).

    ``result`` is an attempt that ended (to record alone), ``rerun`` one to run again alone.
    """

    def __init__(self, result: _Result | None, rerun: Claim | None) -> None:
        super().__init__("the lane's transaction was lost")
        self.result = result
        self.rerun = rerun


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed delivery: the attempt number is its fencing token."""

    id: uuid.UUID
    event_id: uuid.UUID
    listener: str
    attempt: int
    event_name: str
    event_version: int
    payload: dict[str, Any]
    published_at: datetime


class Permanent(Exception):
    """The delivery cannot succeed by retrying (an event this code cannot read)."""


class Dispatcher(Protocol):
    """What a lane uses of the dispatcher that claimed its deliveries."""

    engine: AsyncEngine
    control: AsyncEngine
    registry: ListenerRegistry
    policy: DeliveryPolicy
    lease: float

    async def _deliver(self, claim: Claim) -> None: ...
    def _decode(self, listener: Listener[Event], claim: Claim) -> Event: ...
    def _error_of(
        self, listener: Listener[Event], claim: Claim, exc: Exception, timed_out: bool
    ) -> str: ...
    def _gave_up(self, listener: Listener[Event], claim: Claim, error: str) -> None: ...
    async def _retry(self, claim: Claim, error: str) -> str | None: ...
    async def _fail(self, listener: Listener[Event], claim: Claim, error: str) -> str | None: ...


class Lane:
    """Runs ``claims`` (claimed together at ``claimed_at``, monotonic) for ``dispatcher``."""

    def __init__(self, dispatcher: Dispatcher, claims: list[Claim], claimed_at: float) -> None:
        self.d = dispatcher
        self.queue = deque(claims)
        self.deadline = claimed_at + dispatcher.lease
        self._savepoints = 0

    async def run(self) -> None:
        while self.queue:
            if len(self.queue) == 1:  # nothing to share a transaction with
                await self.d._deliver(self.queue.popleft())
                return
            rerun = await self._transaction()
            for claim in rerun:
                await self.d._deliver(claim)
            if self.queue:
                await self._renew()

    async def _transaction(self) -> list[Claim]:
        """Run deliveries from the queue in one transaction; returns those to run again alone."""
        results: list[_Result] = []
        async with self.d.engine.connect() as conn:
            outer = await conn.begin()
            try:
                while self.queue:
                    claim = self.queue[0]
                    listener = self.d.registry.get(claim.listener)
                    if listener is None:  # unsubscribed since the claim; the lease returns it
                        self.queue.popleft()
                        continue
                    budget = (
                        self.d.policy.timeout_for(listener) + self.d.policy.lease_grace_seconds / 2
                    )
                    if results and time.monotonic() + budget > self.deadline:
                        break  # commit what ran, renew the lease of the rest
                    self.queue.popleft()
                    results.append(await self._one(conn, outer, claim, listener))
            except _Lost as lost:
                await _discard(conn)
                if lost.result is not None:  # the one whose attempt it was: record it alone
                    await self._record_alone(lost.result)
                rerun = [r.claim for r in results]
                return rerun if lost.rerun is None else [*rerun, lost.rerun]
            return await self._finish(conn, outer, results)

    async def _one(
        self,
        conn: AsyncConnection,
        outer: AsyncTransaction,
        claim: Claim,
        listener: Listener[Event],
    ) -> _Result:
        d = self.d
        self._savepoints += 1
        name = f"delivery_{self._savepoints}"
        delivery = _delivery(conn, claim, name)
        max_attempts = d.policy.max_attempts_for(listener)
        with observe(module=listener.module, route=f"listener:{listener.name}", kind="event"):
            started = time.perf_counter()
            timeout = asyncio.timeout(d.policy.timeout_for(listener))
            try:
                if claim.attempt > max_attempts:
                    # The previous attempt's dispatcher died holding the lease: it counted.
                    raise Permanent("the dispatcher running the last attempt died")
                event_ = d._decode(listener, claim)
                retry: str | None = None
                async with timeout:
                    try:
                        await listener.handler(event_, delivery)
                    except Retry as exc:  # the attempt's work stays; the delivery comes back
                        retry = _describe(exc)
                    await _flush(delivery.opened_session)
                if retry is None:
                    result = _Result(claim, listener, "delivered", _begun(delivery))
                else:
                    result = self._again(claim, listener, max_attempts, retry)
                    result.kept_work = _begun(delivery)
            except Permanent as exc:
                result = _Result(claim, listener, "failed", False, str(exc))
                if _begun(delivery):  # cannot be: the listener never ran
                    raise _Lost(result, None) from exc
            except Exception as exc:
                error = d._error_of(listener, claim, exc, timeout.expired())
                result = self._again(claim, listener, max_attempts, error)
                if conn.invalidated or not outer.is_active:
                    raise _Lost(result, None) from exc
                if _begun(delivery):
                    try:
                        await conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}")
                    except Exception as rollback_error:
                        raise _Lost(result, None) from rollback_error
            finally:
                if delivery.opened_session is not None:
                    delivery.opened_session.sync_session.expunge_all()
            DELIVERY_DURATION.labels(listener=listener.name).observe(time.perf_counter() - started)
        if conn.invalidated or not outer.is_active:
            # The listener returned, but rolled back more than its own work: run it again alone.
            raise _Lost(None, claim)
        return result

    def _again(
        self, claim: Claim, listener: Listener[Event], max_attempts: int, error: str
    ) -> _Result:
        if claim.attempt >= max_attempts:
            return _Result(claim, listener, "failed", False, error)
        return _Result(claim, listener, "retry", False, error, self.d.policy.backoff(claim.attempt))

    async def _finish(
        self, conn: AsyncConnection, outer: AsyncTransaction, results: list[_Result]
    ) -> list[Claim]:
        if not results:
            await outer.rollback()
            return []
        params: dict[str, Any] = {
            "ids": [r.claim.id for r in results],
            "attempts": [r.claim.attempt for r in results],
            "statuses": [_OUTCOME_STATUS[r.outcome] for r in results],
            "delays": [r.delay for r in results],
            "errors": [r.error for r in results],
        }
        try:
            marked = set((await conn.execute(_MARK_MANY, params)).scalars())
            superseded = [r for r in results if r.claim.id not in marked]
            if any(r.kept_work for r in superseded):
                # Work of a superseded attempt must not commit; the others are fenced alone.
                await outer.rollback()
                log.warning("event_lane_superseded", deliveries=len(superseded))
                return [r.claim for r in results if r.claim.id in marked]
            await outer.commit()
        except Exception:
            # A listener left its savepoint aborted, or the server went away: run them alone.
            log.warning("event_lane_failed", deliveries=len(results), exc_info=True)
            await _discard(conn)
            return [r.claim for r in results]
        for r in results:
            if r.claim.id in marked:
                DELIVERIES.labels(listener=r.listener.name, outcome=r.outcome).inc()
                if r.outcome == "failed":
                    self.d._gave_up(r.listener, r.claim, r.error or "")
            else:
                log.warning("event_delivery_superseded", delivery_id=str(r.claim.id))
        return []

    async def _record_alone(self, result: _Result) -> None:
        if result.outcome == "failed":
            outcome = await self.d._fail(result.listener, result.claim, result.error or "")
        else:
            outcome = await self.d._retry(result.claim, result.error or "")
        if outcome is not None:
            DELIVERIES.labels(listener=result.listener.name, outcome=outcome).inc()

    async def _renew(self) -> None:
        """Push the lease of the deliveries not yet run out again; drop those lost meanwhile."""
        claims = list(self.queue)
        started = time.monotonic()
        params = {
            "ids": [c.id for c in claims],
            "attempts": [c.attempt for c in claims],
            "lease": self.d.lease,
        }
        try:
            async with self.d.control.begin() as conn:
                renewed = set((await conn.execute(_RENEW, params)).scalars())
        except Exception:
            # Run them anyway, one per transaction: each attempt's mark is fenced.
            log.warning("event_lease_renewal_failed", exc_info=True)
            self.deadline = started
            return
        self.queue = deque(c for c in claims if c.id in renewed)
        self.deadline = started + self.d.lease


def _begun(delivery: Delivery) -> bool:
    session = delivery.opened_session
    return session is not None and bool(session.info.get("begun"))


async def _flush(session: AsyncSession | None) -> None:
    if session is not None and (session.new or session.dirty or session.deleted):
        await session.flush()


async def _discard(conn: AsyncConnection) -> None:
    """Roll back a lane whose connection may be broken."""
    try:
        await conn.rollback()
    except Exception:
        log.warning("event_lane_rollback_failed", exc_info=True)
        await conn.invalidate()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _delivery(conn: AsyncConnection, claim: Claim, savepoint: str) -> Delivery:
    """The delivery a listener gets: its session joins the lane's transaction at a savepoint."""
    return Delivery(
        id=claim.id,
        event_id=claim.event_id,
        listener=claim.listener,
        attempt=claim.attempt,
        published_at=claim.published_at,
        session_factory=lambda: AsyncSession(
            bind=conn,
            sync_session_class=_LaneSession,
            join_transaction_mode="rollback_only",
            expire_on_commit=False,
            autoflush=False,
            info={"savepoint": savepoint},
        ),
    )
