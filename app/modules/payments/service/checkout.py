"""Checkout: an idempotent request that creates an order and charges it through the provider.

The work runs in short transactions, with the provider's charge between them and no database
transaction open while the provider thinks (Stripe's recovery points are the model):

1. **Claim** the ``Idempotency-Key`` (``INSERT ... ON CONFLICT DO NOTHING`` on
   ``payments_idempotency_key``, committed at once) with a **lease**
   (``APP_PAYMENTS_IDEMPOTENCY_LEASE_SECONDS``, longer than the provider timeout). The row, not
   process memory, decides: a second request with the key gets the stored response (same body),
   a 409 "in progress" problem while the lease runs (``Retry-After``: until it lapses), or a 422
   problem (another body).
2. **Create** the order, its items (names and prices copied from the catalog now) and a pending
   payment; commit, the order's id on the key (the recovery point). Bad input (unknown or
   inactive product, mixed currencies) releases the key, as a request that never started leaves
   nothing to replay.
3. **Charge** through the ``PaymentProvider`` with the payment id as the provider's idempotency
   key, bounded by ``APP_PAYMENTS_PROVIDER_TIMEOUT_SECONDS``.
4. **Record** the outcome, publish the event and store the response on the key, in one transaction.

Recovery: an order is ``paid`` only after the provider said the charge succeeded. A request that
died (``kill -9``, a lost connection) leaves its key in progress; once the lease lapses the next
request with the key **resumes** from the recovery point: no order yet, it creates one; an order
whose payment is pending, it asks the provider again with the same idempotency key (which returns
the first charge if there was one); a payment settled meanwhile (webhook, reconciliation), it
answers with that. A provider timeout answers 504 and gives the lease up at once, so a retry
resumes rather than replays. Keys nobody retries are settled by the worker's reconciliation
(``reconciliation.py``): it asks the provider by our reference and settles, or marks the payment
failed and releases the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.modules.payments import metrics
from app.modules.payments import repository as repo
from app.modules.payments.models import IdempotencyKey, Order, OrderItem, Payment
from app.modules.payments.providers import ChargeResult, PaymentProvider, ProviderError
from app.modules.payments.schemas import CheckoutRequest, OrderOut
from app.modules.payments.service._common import (
    NOT_CHARGED,
    CheckoutInvalid,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    MixedCurrencies,
    PaymentDeclined,
    ProviderFailed,
    ProviderTimedOut,
    TransactionalService,
    _emit,
    order_paid_event,
    payment_failed_event,
)
from app.platform.config import Settings
from app.platform.errors import PROBLEM_CONTENT_TYPE, AppError, problem_body
from app.platform.observability.context import current_request_id
from app.platform.observability.logging import get_logger

log = get_logger("app.payments")

CHECKOUT_PATH = "/v1/checkout"


@dataclass(frozen=True, slots=True)
class CheckoutResponse:
    """The response of a checkout, exactly as stored against its idempotency key."""

    status: int
    body: bytes
    replayed: bool = False
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # The outcome is not known yet (provider timeout): answered, but not stored on the key.
    unsettled: bool = False


def fingerprint(request: CheckoutRequest) -> str:
    """A digest of what the request asks for, independent of JSON spacing and key order."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Claim:
    row: IdempotencyKey | None  # None: a new claim
    taken: bool


class CheckoutService(TransactionalService):
    """Checkout: its own short transactions from ``sessions``, the provider from ``ports``."""

    async def checkout(
        self, *, user_id: uuid.UUID, key: str, request: CheckoutRequest
    ) -> CheckoutResponse:
        """Claim the key, create the order, charge it, record the outcome (see the module)."""
        return await _checkout(
            self.sessions,
            self.ports.provider,
            self.settings,
            user_id=user_id,
            key=key,
            request=request,
        )


async def _checkout(
    sessions: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    key: str,
    request: CheckoutRequest,
) -> CheckoutResponse:
    digest = fingerprint(request)
    async with sessions.begin() as session:
        claim = await _claim(session, settings, user_id, key, digest)
    if not claim.taken:
        return _answer_from_existing(claim.row, digest, settings)

    started = time.perf_counter()
    order_id = claim.row.order_id if claim.row is not None else None
    if order_id is None:
        try:
            async with sessions.begin() as session:
                order, payment = await _create_order(session, user_id, request)
                await repo.set_idempotency_order(session, user_id, key, order.id)
                order_id = order.id
        except Exception:
            async with sessions.begin() as session:
                await repo.release_idempotency_key(session, user_id, key)
            raise
    else:
        log.info("checkout_resumed", order_id=str(order_id))
    async with sessions.begin() as session:
        payment = await repo.payment_of_order(session, order_id)

    outcome: str | None = None
    result: ChargeResult | None = None
    failure: str | None = None
    if payment.status == "pending":
        outcome, result, failure = await _charge(provider, settings, payment, request.payment_token)

    async with sessions.begin() as session:
        response = await _record_outcome(session, payment.id, outcome, result, failure)
        if response.unsettled:
            await repo.end_lease(session, user_id, key)
        else:
            await repo.complete_idempotency_key(
                session, user_id, key, status=response.status, body=response.body
            )
    if outcome is not None:
        metrics.checkouts_total.labels(outcome=outcome).inc()
        metrics.checkout_duration_seconds.observe(time.perf_counter() - started)
    return response


async def _claim(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, key: str, digest: str
) -> _Claim:
    ttl = timedelta(seconds=settings.payments_idempotency_ttl_seconds)
    lease = timedelta(seconds=settings.payments_idempotency_lease_seconds)
    args: dict[str, Any] = {"user_id": user_id, "key": key, "fingerprint": digest}
    if await repo.claim_idempotency_key(
        session, ttl=ttl, lease=lease, **args
    ) or await repo.take_over_expired_key(session, ttl=ttl, lease=lease, **args):
        return _Claim(None, taken=True)
    stalled = await repo.take_over_stalled_key(session, lease=lease, **args)
    if stalled is not None:
        return _Claim(stalled, taken=True)
    return _Claim(await repo.get_idempotency_key(session, user_id, key), taken=False)


def _answer_from_existing(
    row: IdempotencyKey | None, digest: str, settings: Settings
) -> CheckoutResponse:
    if row is None:  # released between our insert attempt and our read: the first one failed
        raise IdempotencyKeyInProgress(
            "A request with this Idempotency-Key just ended without a result; retry",
            headers={"Retry-After": "1"},
        )
    if row.fingerprint != digest:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request body; "
            "use a new key for a new checkout"
        )
    if row.state != "completed" or row.response_status is None or row.response_body is None:
        left = settings.payments_idempotency_lease_seconds
        if row.locked_until is not None:
            left = (row.locked_until - datetime.now(UTC)).total_seconds()
        wait = min(max(1, math.ceil(left)), math.ceil(settings.payments_idempotency_lease_seconds))
        raise IdempotencyKeyInProgress(
            "The first request with this Idempotency-Key is still in progress; retry after "
            f"{wait}s (a request that stopped answering is resumed then)",
            headers={"Retry-After": str(wait)},
            order_id=row.order_id,
        )
    is_problem = row.response_status >= 400
    return CheckoutResponse(
        status=row.response_status,
        body=row.response_body,
        replayed=True,
        media_type="application/problem+json" if is_problem else "application/json",
    )


async def _create_order(
    session: AsyncSession, user_id: uuid.UUID, request: CheckoutRequest
) -> tuple[Order, Payment]:
    ids = [item.product_id for item in request.items]
    if len(set(ids)) != len(ids):
        raise CheckoutInvalid("Each product may appear once; use quantity for more")
    products = await repo.products_by_ids(session, ids)
    unknown = [str(i) for i in ids if i not in products or not products[i].active]
    if unknown:
        raise CheckoutInvalid(
            "Some products do not exist or are no longer sold", product_ids=unknown
        )
    currencies = sorted({products[i].currency for i in ids})
    if len(currencies) > 1:
        raise MixedCurrencies(
            f"The cart mixes {', '.join(currencies)}; check out each currency separately",
            currencies=currencies,
        )
    items = [
        OrderItem(
            position=position,
            product_id=product.id,
            product_name=product.name,
            unit_amount=product.price_amount,
            quantity=line.quantity,
            line_amount=product.price_amount * line.quantity,
        )
        for position, (line, product) in enumerate(
            (line, products[line.product_id]) for line in request.items
        )
    ]
    total = sum(item.line_amount for item in items)
    order = Order(
        id=uuid.uuid4(),
        user_id=user_id,
        status="pending",
        currency=currencies[0],
        total_amount=total,
        refunded_amount=0,
        items=items,
    )
    payment = Payment(
        id=uuid.uuid4(),
        order_id=order.id,
        status="pending",
        amount=total,
        currency=order.currency,
        refunded_amount=0,
    )
    session.add_all([order, payment])
    await session.flush()
    return order, payment


async def _charge(
    provider: PaymentProvider, settings: Settings, payment: Payment, token: str
) -> tuple[str, ChargeResult | None, str | None]:
    """(metric outcome, provider result, failure kind) with no transaction open."""
    try:
        result = await asyncio.wait_for(
            provider.charge(
                amount=payment.amount,
                currency=payment.currency,
                token=token,
                reference=str(payment.id),
                idempotency_key=f"charge:{payment.id}",
            ),
            timeout=settings.payments_provider_timeout_seconds,
        )
    except TimeoutError:
        log.warning("payment provider timed out", payment_id=str(payment.id))
        return "error", None, "timeout"
    except ProviderError as exc:
        log.warning("payment provider failed", payment_id=str(payment.id), error=str(exc))
        return "error", None, "provider_error"
    except Exception:
        # Unknown whether it charged: treated like a timeout, the order stays pending.
        log.exception("payment provider raised", payment_id=str(payment.id))
        return "error", None, "timeout"
    outcome = {"succeeded": "succeeded", "declined": "declined", "pending": "pending"}
    return outcome[result.status], result, None


async def _record_outcome(
    session: AsyncSession,
    payment_id: uuid.UUID,
    outcome: str | None,
    result: ChargeResult | None,
    failure: str | None,
) -> CheckoutResponse:
    """Apply what the provider said (``outcome`` None: nothing new) and answer with the state."""
    locked = await repo.lock_payment_by_reference(session, charge_id=None, payment_id=payment_id)
    assert locked is not None, "the payment was committed before the charge"
    payment, order = locked
    if result is not None and result.charge_id and payment.provider_charge_id is None:
        payment.provider_charge_id = result.charge_id
    # A webhook or the reconciliation may have settled the payment while we waited; it stands,
    # unless the reconciliation found no charge and the provider charged after all.
    overtaken = payment.failure_code == NOT_CHARGED and outcome == "succeeded"
    if payment.status == "pending" or overtaken:
        if outcome == "succeeded":
            payment.status, order.status = "succeeded", "paid"
            await _emit(session, order_paid_event(order, payment))
        elif outcome == "declined" or failure == "provider_error":
            code = (result.failure_code if result else None) or "provider_error"
            payment.status, payment.failure_code, order.status = "failed", code, "failed"
            await _emit(session, payment_failed_event(order, payment, code))
    await session.flush()
    response = await settled_response(session, order.id, payment)
    if response is None:
        return _problem(
            ProviderTimedOut(
                "The payment provider did not answer in time. The order stays pending until "
                "the provider reports the outcome; retry with the same key, or follow "
                "GET /v1/orders/{id}"
            ),
            order_id=order.id,
            order=await _order_out(session, order.id),
            unsettled=True,
        )
    return response


async def _order_out(session: AsyncSession, order_id: uuid.UUID) -> OrderOut:
    loaded = await repo.get_order(session, order_id)
    assert loaded is not None
    return OrderOut.model_validate(loaded)


async def settled_response(
    session: AsyncSession, order_id: uuid.UUID, payment: Payment
) -> CheckoutResponse | None:
    """The response a checkout of this order stores on its key; None while still pending.

    ``tok_pending`` charges answer 202 (accepted, a webhook decides): that is stored too.
    """
    body = await _order_out(session, order_id)
    if payment.status == "failed":
        code = payment.failure_code or "provider_error"
        error: AppError = (
            ProviderFailed(
                "The payment provider failed; nothing was charged. Try again with a new key"
            )
            if code == "provider_error"
            else PaymentDeclined(f"The payment was declined ({code})")
        )
        return _problem(error, order_id=order_id, failure_code=code, order=body)
    if payment.status == "pending" and payment.provider_charge_id is None:
        return None
    status = 202 if payment.status == "pending" else 201
    return CheckoutResponse(status=status, body=body.model_dump_json().encode())


def _problem(
    error: AppError, *, order: OrderOut, unsettled: bool = False, **extensions: Any
) -> CheckoutResponse:
    # Bytes, not a response: the router answers with them and the key stores them as they are.
    body = problem_body(
        status=error.status,
        slug=error.slug,
        title=error.title,
        detail=error.detail,
        instance=CHECKOUT_PATH,
        # The request that produced the answer: a replay repeats it byte for byte, id included.
        request_id=current_request_id(),
        order_status=order.status,
        **extensions,
    )
    return CheckoutResponse(
        status=error.status,
        body=body,
        media_type=PROBLEM_CONTENT_TYPE,
        unsettled=unsettled,
    )
