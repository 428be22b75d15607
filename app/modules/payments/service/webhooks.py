"""Provider webhooks: verify the signature, keep each event id once (the inbox), apply outcomes.

Event shape: ``{"id": "evt_...", "type": "charge.succeeded" | "charge.failed", "data":
{"charge_id": "ch_...", "reference": "<our payment id>", "failure_code": "..."}}``, and
``charge.refunded`` with ``data.refund_reference`` (our refund id) and ``data.refund_id``. Only a
payment or refund still ``pending`` changes; an outcome for a settled one is recorded and
ignored, so a late or reordered delivery never flips a paid order or refunds twice. The inbox
row and the change commit together: if applying fails, the event id is not kept and the
provider's retry is processed.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.payments import metrics, repository
from app.modules.payments.models import Order, Payment, Refund
from app.modules.payments.providers import signing
from app.modules.payments.service._common import order_paid_event, payment_failed_event
from app.modules.payments.service.refunds import settle_refund
from app.platform.config import Settings
from app.platform.errors import BadRequest, MalformedBody
from app.platform.events import EventSink, Outbox


class WebhookSignatureInvalid(BadRequest):
    slug, title = "webhook-signature-invalid", "The webhook signature is not valid"


class WebhookTimestampStale(BadRequest):
    slug, title = "webhook-timestamp-stale", "The webhook timestamp is outside the tolerance"


class WebhookMalformed(BadRequest):
    slug, title = "webhook-malformed", "The webhook body is not a provider event"


class WebhooksRepository(Protocol):
    """The webhook inbox and the rows it settles (``app.modules.payments.repository``)."""

    async def record_webhook_event(
        self, session: AsyncSession, *, event_id: str, type_: str, payload: dict[str, Any]
    ) -> bool: ...

    async def set_webhook_outcome(
        self, session: AsyncSession, event_id: str, outcome: str
    ) -> None: ...

    async def get_refund_by_id(
        self, session: AsyncSession, refund_id: uuid.UUID
    ) -> Refund | None: ...

    async def lock_payment_by_reference(
        self, session: AsyncSession, *, charge_id: str | None, payment_id: uuid.UUID | None
    ) -> tuple[Payment, Order] | None: ...


class WebhooksService:
    """The provider's webhooks, on the request's session (the inbox row and the change commit
    together)."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        *,
        repo: WebhooksRepository = repository,
        outbox: EventSink | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.repo = repo
        self.outbox = outbox or Outbox(session)

    async def handle(self, *, signature: str | None, body: bytes) -> str:
        """The outcome (``applied``, ``ignored``, ``duplicate``) or a 400 problem."""
        self._verify(signature, body)
        event = _parse(body)
        event_id, event_type, data = event["id"], event["type"], event["data"]
        if not await self.repo.record_webhook_event(
            self.session, event_id=event_id, type_=event_type, payload=event
        ):
            metrics.webhooks_total.labels(outcome="duplicate").inc()
            return "duplicate"
        outcome = await self._apply(event_type, data)
        await self.repo.set_webhook_outcome(self.session, event_id, outcome)
        metrics.webhooks_total.labels(outcome=outcome).inc()
        return outcome

    def _verify(self, signature: str | None, body: bytes) -> None:
        settings = self.settings
        try:
            signing.verify(
                settings.payments_webhook_secret.get_secret_value(),
                signature,
                body,
                tolerance=settings.payments_webhook_tolerance_seconds,
            )
        except signing.StaleTimestamp as exc:
            metrics.webhooks_total.labels(outcome="stale").inc()
            raise WebhookTimestampStale(str(exc)) from exc
        except signing.SignatureError as exc:
            metrics.webhooks_total.labels(outcome="invalid_signature").inc()
            raise WebhookSignatureInvalid(str(exc)) from exc

    async def _apply_refund(self, data: dict[str, Any]) -> str:
        refund_id, provider_refund_id = _uuid(data.get("refund_reference")), data.get("refund_id")
        if refund_id is None or not isinstance(provider_refund_id, str) or not provider_refund_id:
            return "ignored"  # a refund made elsewhere (the provider's dashboard): not ours to book
        if await self.repo.get_refund_by_id(self.session, refund_id) is None:
            return "ignored"
        _, changed = await settle_refund(
            self.session, refund_id, provider_refund_id=provider_refund_id[:100]
        )
        return "applied" if changed else "ignored"

    async def _apply(self, event_type: str, data: dict[str, Any]) -> str:
        if event_type == "charge.refunded":
            return await self._apply_refund(data)
        if event_type not in ("charge.succeeded", "charge.failed"):
            return "ignored"
        charge_id = data.get("charge_id") if isinstance(data.get("charge_id"), str) else None
        reference = _uuid(data.get("reference"))
        locked = await self.repo.lock_payment_by_reference(
            self.session, charge_id=charge_id, payment_id=reference
        )
        if locked is None:
            return "ignored"
        payment, order = locked
        if payment.status != "pending":
            return "ignored"
        if charge_id and payment.provider_charge_id is None:
            payment.provider_charge_id = charge_id
        if event_type == "charge.succeeded":
            if payment.provider_charge_id is None:
                return "ignored"  # a capture we could never refund: wait for one that names it
            payment.status, order.status = "succeeded", "paid"
            await self.outbox.publish(order_paid_event(order, payment))
        else:
            code = data.get("failure_code")
            reason = code if isinstance(code, str) and code else "declined"
            payment.status, payment.failure_code, order.status = "failed", reason[:64], "failed"
            await self.outbox.publish(payment_failed_event(order, payment, reason[:64]))
        await self.session.flush()
        return "applied"


def _parse(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except ValueError as exc:
        metrics.webhooks_total.labels(outcome="malformed").inc()
        # The platform's one type for a body that does not parse, as on every other route.
        raise MalformedBody("The body is not valid JSON") from exc
    valid = (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and 0 < len(event["id"]) <= 255
        and isinstance(event.get("type"), str)
        and 0 < len(event["type"]) <= 100
        and isinstance(event.get("data"), dict)
    )
    if not valid:
        metrics.webhooks_total.labels(outcome="malformed").inc()
        raise WebhookMalformed("An event needs a string id, a string type and a data object")
    checked: dict[str, Any] = event
    return checked


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) and value else None
    except ValueError:
        return None
