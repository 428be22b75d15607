"""Checkout: an idempotent request that creates an order and charges it through the provider.

The work runs in three short transactions, with the provider's charge between them and no
database transaction open while the provider thinks:

1. **Claim** the ``Idempotency-Key`` (``INSERT ... ON CONFLICT DO NOTHING`` on
   ``payments_idempotency_key``, committed at once). The row, not process memory, decides: a
   second request with the key finds it and gets the stored response (same body), a 409
   "in progress" problem (the first is still running) or a 422 problem (another body).
2. **Create** the order, its items (names and prices copied from the catalog now) and a pending
   payment; commit. Bad input (unknown or inactive product, mixed currencies) releases the key, as
   a request that never started leaves nothing to replay.
3. **Charge** through the ``PaymentProvider`` with the payment id as the provider's idempotency
   key, bounded by ``APP_PAYMENTS_PROVIDER_TIMEOUT_SECONDS``.
4. **Record** the outcome, publish the event and store the response on the key, in one transaction.

Recovery: an order is ``paid`` only after the provider said the charge succeeded. When the
provider times out (or the process dies between 3 and 4) the order and payment stay ``pending``;
the provider's webhook (``charge.succeeded`` / ``charge.failed``, which carries our payment id as
``reference``) settles them later, see ``webhooks.py``. A client retrying with the same key gets
the stored 504 problem naming the order, whose current state ``GET /v1/orders/{id}`` shows. A
key whose request died before step 4 stays "in progress" until it expires; its 409 problem names
the order (``order_id``) so the client can follow that instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.modules.payments import metrics
from app.modules.payments import repository as repo
from app.modules.payments.models import IdempotencyKey, Order, OrderItem, Payment
from app.modules.payments.providers import ChargeResult, PaymentProvider, ProviderError
from app.modules.payments.schemas import CheckoutRequest, OrderOut
from app.modules.payments.service._common import (
    CheckoutInvalid,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    MixedCurrencies,
    PaymentDeclined,
    ProviderFailed,
    ProviderTimedOut,
    _emit,
    order_paid_event,
    payment_failed_event,
)
from app.platform.config import Settings
from app.platform.errors import AppError, problem_response
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


def fingerprint(request: CheckoutRequest) -> str:
    """A digest of what the request asks for, independent of JSON spacing and key order."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


async def checkout(
    sessions: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    key: str,
    request: CheckoutRequest,
) -> CheckoutResponse:
    digest = fingerprint(request)
    ttl = timedelta(seconds=settings.payments_idempotency_ttl_seconds)
    async with sessions.begin() as session:
        claimed = await repo.claim_idempotency_key(
            session, user_id=user_id, key=key, fingerprint=digest, ttl=ttl
        ) or await repo.take_over_expired_key(
            session, user_id=user_id, key=key, fingerprint=digest, ttl=ttl
        )
        existing = None if claimed else await repo.get_idempotency_key(session, user_id, key)
    if not claimed:
        return _answer_from_existing(existing, digest)

    started = time.perf_counter()
    try:
        async with sessions.begin() as session:
            order, payment = await _create_order(session, user_id, request)
            await repo.set_idempotency_order(session, user_id, key, order.id)
    except Exception:
        async with sessions.begin() as session:
            await repo.release_idempotency_key(session, user_id, key)
        raise

    outcome, result, failure = await _charge(provider, settings, payment, request.payment_token)

    async with sessions.begin() as session:
        response = await _record_outcome(session, payment.id, outcome, result, failure)
        await repo.complete_idempotency_key(
            session, user_id, key, status=response.status, body=response.body
        )
    metrics.checkouts_total.labels(outcome=outcome).inc()
    metrics.checkout_duration_seconds.observe(time.perf_counter() - started)
    return response


def _answer_from_existing(row: IdempotencyKey | None, digest: str) -> CheckoutResponse:
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
        raise IdempotencyKeyInProgress(
            "The first request with this Idempotency-Key is still in progress; retry shortly",
            headers={"Retry-After": "1"},
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
    outcome: str,
    result: ChargeResult | None,
    failure: str | None,
) -> CheckoutResponse:
    locked = await repo.lock_payment_by_reference(session, charge_id=None, payment_id=payment_id)
    assert locked is not None, "the payment was committed before the charge"
    payment, order = locked
    if result is not None and result.charge_id and payment.provider_charge_id is None:
        payment.provider_charge_id = result.charge_id
    # A webhook may have settled the payment while we waited; its outcome stands.
    if payment.status == "pending":
        if outcome == "succeeded":
            payment.status, order.status = "succeeded", "paid"
            await _emit(session, order_paid_event(order, payment))
        elif outcome == "declined" or failure == "provider_error":
            code = (result.failure_code if result else None) or "provider_error"
            payment.status, payment.failure_code, order.status = "failed", code, "failed"
            await _emit(session, payment_failed_event(order, payment, code))
    await session.flush()
    loaded = await repo.get_order(session, order.id)
    assert loaded is not None
    body = OrderOut.model_validate(loaded)

    if order.status == "failed":
        code = payment.failure_code or "provider_error"
        error: AppError = (
            ProviderFailed(
                "The payment provider failed; nothing was charged. Try again with a new key"
            )
            if code == "provider_error"
            else PaymentDeclined(f"The payment was declined ({code})")
        )
        return _problem(error, order_id=order.id, failure_code=code, order=body)
    if outcome == "error" and order.status == "pending":
        return _problem(
            ProviderTimedOut(
                "The payment provider did not answer in time. The order stays pending until "
                "the provider reports the outcome; GET /v1/orders/{id} shows it"
            ),
            order_id=order.id,
            order=body,
        )
    status = 201 if order.status == "paid" else 202
    return CheckoutResponse(status=status, body=body.model_dump_json().encode())


def _problem(error: AppError, *, order: OrderOut, **extensions: Any) -> CheckoutResponse:
    response = problem_response(
        None,
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
        status=error.status, body=bytes(response.body), media_type="application/problem+json"
    )
