"""The port the payments service charges and refunds through, whatever the provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


class ProviderError(Exception):
    """The provider answered with an error of its own: nothing was charged."""


class ProviderTimeout(Exception):
    """The provider did not answer in time: whether it charged is unknown until it reports."""


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: Literal["succeeded", "declined", "pending"]
    charge_id: str | None
    # Why a charge was declined: "card_declined", "insufficient_funds", "invalid_token".
    failure_code: str | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund_id: str


class PaymentProvider(Protocol):
    """A payment provider. ``idempotency_key`` makes a retried call return the first result."""

    async def charge(
        self, *, amount: int, currency: str, token: str, reference: str, idempotency_key: str
    ) -> ChargeResult:
        """Charge ``amount`` minor units; ``reference`` (our payment id) comes back in webhooks.

        Raises ``ProviderError`` when the provider fails; never returns on a hang (the caller
        bounds the wait and treats the overrun as ``ProviderTimeout``).
        """
        ...

    async def refund(
        self, *, charge_id: str, amount: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        """Give back ``amount`` minor units of a captured charge."""
        ...
