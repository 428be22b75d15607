"""An in-process payment provider whose outcome is chosen by the payment token.

Test tokens (also in docs/payments.md):

- ``tok_success``: the charge succeeds.
- ``tok_declined``: declined, failure code ``card_declined``.
- ``tok_insufficient_funds``: declined, failure code ``insufficient_funds``.
- ``tok_provider_error``: the provider fails (``ProviderError``); nothing is charged.
- ``tok_timeout``: the provider never answers; the caller's timeout ends the wait and nothing is
  charged here, so the order stays pending until a webhook settles it.
- ``tok_pending``: accepted as pending; the outcome arrives later as a signed webhook
  (``charge.succeeded`` or ``charge.failed`` naming the charge id).
- any other token: declined, failure code ``invalid_token``.

Every answer takes ``APP_PAYMENTS_FAKE_PROVIDER_LATENCY_MS``. Calls are idempotent per
``idempotency_key`` as a real provider's are, and ``charges`` records each charge actually made.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Literal

from app.modules.payments.providers.base import ChargeResult, ProviderError, RefundResult

TOKENS = (
    "tok_success",
    "tok_declined",
    "tok_insufficient_funds",
    "tok_provider_error",
    "tok_timeout",
    "tok_pending",
)


@dataclass(frozen=True, slots=True)
class FakeCharge:
    charge_id: str
    amount: int
    currency: str
    reference: str
    idempotency_key: str
    status: str


class FakePaymentProvider:
    """The default provider in development and tests; holds its ledger in memory."""

    def __init__(self, latency_ms: int = 0) -> None:
        self.latency = latency_ms / 1000
        self.charges: list[FakeCharge] = []
        self.refunds: list[tuple[str, int]] = []
        self._charge_results: dict[str, ChargeResult] = {}
        self._refund_results: dict[str, RefundResult] = {}

    async def _wait(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    async def charge(
        self, *, amount: int, currency: str, token: str, reference: str, idempotency_key: str
    ) -> ChargeResult:
        await self._wait()
        if (done := self._charge_results.get(idempotency_key)) is not None:
            return done
        # The tokens are test fixtures of this fake, not secrets.
        if token == "tok_provider_error":  # noqa: S105
            raise ProviderError("the fake provider failed on purpose (tok_provider_error)")
        if token == "tok_timeout":  # noqa: S105
            await asyncio.Event().wait()  # a provider that never answers
        if token in ("tok_success", "tok_pending"):
            status: Literal["succeeded", "pending"] = (
                "succeeded" if token == "tok_success" else "pending"  # noqa: S105
            )
            charge_id = f"ch_{uuid.uuid4().hex}"
            self.charges.append(
                FakeCharge(charge_id, amount, currency, reference, idempotency_key, status)
            )
            result = ChargeResult(status=status, charge_id=charge_id)
        else:
            code = {"tok_declined": "card_declined", "tok_insufficient_funds": "insufficient_funds"}
            result = ChargeResult(
                status="declined", charge_id=None, failure_code=code.get(token, "invalid_token")
            )
        self._charge_results[idempotency_key] = result
        return result

    async def refund(
        self, *, charge_id: str, amount: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        await self._wait()
        if (done := self._refund_results.get(idempotency_key)) is not None:
            return done
        charge = next((c for c in self.charges if c.charge_id == charge_id), None)
        if charge is None or charge.currency != currency:
            raise ProviderError(f"the fake provider knows no {currency} charge {charge_id}")
        already = sum(a for c, a in self.refunds if c == charge_id)
        if already + amount > charge.amount:
            raise ProviderError("the fake provider refuses to refund more than was charged")
        self.refunds.append((charge_id, amount))
        result = RefundResult(refund_id=f"re_{uuid.uuid4().hex}")
        self._refund_results[idempotency_key] = result
        return result
