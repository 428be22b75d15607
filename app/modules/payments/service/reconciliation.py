"""The worker's payments jobs: settle what interruptions left pending, purge expired keys.

Reconciliation takes every payment and refund pending longer than
``APP_PAYMENTS_RECONCILE_AFTER_SECONDS`` (at least the key lease, which is longer than the
provider timeout, so no live request is still waiting for the provider), asks the provider what
happened to our reference with no transaction open, and records it: settled as the provider says,
or, when the provider never saw it, failed, with the checkout's key released so the client may
retry with it. A key still leased by a live request is left alone; the reconciliation leases it
itself while it asks, so a retry meanwhile gets a 409 rather than racing it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.payments import metrics
from app.modules.payments import repository as repo
from app.modules.payments.models import Payment, Refund
from app.modules.payments.providers import ChargeRecord
from app.modules.payments.service._common import (
    NOT_CHARGED,
    TransactionalService,
    _emit,
    order_paid_event,
    payment_failed_event,
)
from app.modules.payments.service.checkout import settled_response
from app.modules.payments.service.refunds import settle_refund
from app.platform.observability.logging import get_logger

log = get_logger("app.payments.reconciliation")


@dataclass
class ReconcileReport:
    payments: Counter[str] = field(default_factory=Counter)
    refunds: Counter[str] = field(default_factory=Counter)
    released_keys: int = 0


class ReconciliationService(TransactionalService):
    """The worker's payments jobs: short transactions from ``sessions``, the provider from
    ``ports``."""

    async def reconcile(self, *, older_than: float | None = None) -> ReconcileReport:
        """One pass over what is pending past the bound (``older_than`` seconds overrides it)."""
        settings = self.settings
        bound = timedelta(
            seconds=settings.payments_reconcile_after_seconds if older_than is None else older_than
        )
        limit = settings.payments_reconcile_batch
        report = ReconcileReport()
        async with self.sessions.begin() as session:
            payment_ids = await repo.pending_payment_ids(session, older_than=bound, limit=limit)
            refund_ids = await repo.pending_refund_ids(session, older_than=bound, limit=limit)
        for payment_id in payment_ids:
            outcome = await self._reconcile_payment(payment_id)
            report.payments[outcome] += 1
            metrics.reconciliations_total.labels(kind="payment", outcome=outcome).inc()
        for refund_id in refund_ids:
            outcome = await self._reconcile_refund(refund_id)
            report.refunds[outcome] += 1
            metrics.reconciliations_total.labels(kind="refund", outcome=outcome).inc()
        async with self.sessions.begin() as session:
            report.released_keys = await repo.release_stalled_keys_without_order(
                session, older_than=bound
            )
        released = metrics.reconciliations_total.labels(kind="key", outcome="released")
        released.inc(report.released_keys)
        if payment_ids or refund_ids or report.released_keys:
            log.info(
                "payments_reconciled",
                payments=dict(report.payments),
                refunds=dict(report.refunds),
                released_keys=report.released_keys,
            )
        await self.observe_pending()
        return report

    async def _reconcile_payment(self, payment_id: uuid.UUID) -> str:
        lease = timedelta(seconds=self.settings.payments_idempotency_lease_seconds)
        async with self.sessions.begin() as session:
            payment = await session.get(Payment, payment_id)
            if payment is None or payment.status != "pending":
                return "already_settled"
            if await repo.lease_keys_of_order(session, payment.order_id, lease) is None:
                return "in_flight"
        try:
            record = await asyncio.wait_for(
                self.ports.provider.find_charge(reference=str(payment_id)),
                timeout=self.settings.payments_provider_timeout_seconds,
            )
        except Exception as exc:
            log.warning("reconcile_lookup_failed", payment_id=str(payment_id), error=repr(exc))
            return "error"
        async with self.sessions.begin() as session:
            return await _settle_payment(session, payment_id, record)

    async def _reconcile_refund(self, refund_id: uuid.UUID) -> str:
        async with self.sessions.begin() as session:
            refund = await session.get(Refund, refund_id)
            if refund is None or refund.status != "pending":
                return "already_settled"
        try:
            record = await asyncio.wait_for(
                self.ports.provider.find_refund(reference=str(refund_id)),
                timeout=self.settings.payments_provider_timeout_seconds,
            )
        except Exception as exc:
            log.warning("reconcile_lookup_failed", refund_id=str(refund_id), error=repr(exc))
            return "error"
        async with self.sessions.begin() as session:
            refund, changed = await settle_refund(
                session,
                refund_id,
                provider_refund_id=None if record is None else record.refund_id,
                failure_code="not_refunded",
            )
        if not changed:
            return "already_settled"
        return "succeeded" if refund.status == "succeeded" else "failed"

    async def observe_pending(self) -> None:
        """Refresh ``payments_pending_oldest_age_seconds`` from the database."""
        async with self.sessions() as session:
            ages = await repo.oldest_pending_ages(session)
        for kind, age in ages.items():
            metrics.pending_oldest_age_seconds.labels(kind=kind).set(age)

    async def purge_expired_keys(self) -> list[int]:
        """Delete expired idempotency keys in batches of ``APP_PAYMENTS_PURGE_BATCH``, each its
        own short transaction, at most ``APP_PAYMENTS_PURGE_MAX_BATCHES`` a run: the rows
        deleted each."""
        batch = self.settings.payments_purge_batch
        batches: list[int] = []
        for _ in range(self.settings.payments_purge_max_batches):
            async with self.sessions.begin() as session:
                deleted = await repo.purge_expired_keys(session, batch=batch)
            batches.append(deleted)
            metrics.idempotency_keys_purged_total.inc(deleted)
            if deleted < batch:
                break
        if sum(batches):
            log.info("idempotency_keys_purged", deleted=sum(batches), batches=len(batches))
        return batches


async def _settle_payment(
    session: AsyncSession, payment_id: uuid.UUID, record: ChargeRecord | None
) -> str:
    locked = await repo.lock_payment_by_reference(session, charge_id=None, payment_id=payment_id)
    assert locked is not None
    payment, order = locked
    if payment.status != "pending":
        outcome = "already_settled"
    elif record is None or record.status == "declined":
        code = NOT_CHARGED if record is None else (record.failure_code or "declined")
        payment.status, payment.failure_code, order.status = "failed", code, "failed"
        await _emit(session, payment_failed_event(order, payment, code))
        outcome = "failed"
    elif record.status == "succeeded":
        payment.provider_charge_id = payment.provider_charge_id or record.charge_id
        payment.status, order.status = "succeeded", "paid"
        await _emit(session, order_paid_event(order, payment))
        outcome = "succeeded"
    else:  # the provider itself is still deciding; its webhook or a later pass settles it
        payment.provider_charge_id = payment.provider_charge_id or record.charge_id
        outcome = "still_pending"
    await session.flush()
    response = await settled_response(session, order.id, payment)
    for key in await repo.keys_of_order(session, order.id):
        if record is None and outcome == "failed":
            await session.delete(key)  # never charged: the client may use the key again
        elif response is not None:
            await repo.complete_idempotency_key(
                session, key.user_id, key.key, status=response.status, body=response.body
            )
    return outcome
