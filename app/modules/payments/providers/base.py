"""The port the payments service charges, refunds and asks through, whatever the provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


class ProviderError(Exception):
    """The provider answered with an error of its own: nothing was charged or refunded."""


class ProviderTimeout(Exception):
    """The provider did not answer in time: whether it acted is unknown until it reports."""


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: Literal["succeeded", "declined", "pending"]
    charge_id: str | None
    # Why a charge was declined: "card_declined", "insufficient_funds", "invalid_token".
    failure_code: str | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund_id: str


@dataclass(frozen=True, slots=True)
class ChargeRecord:
    """What the provider knows of a charge made with our reference."""

    status: Literal["succeeded", "declined", "pending"]
    charge_id: str | None
    amount: int
    currency: str
    failure_code: str | None = None


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """What the provider knows of a refund made with our reference."""

    refund_id: str
    charge_id: str
    amount: int
    currency: str


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
        self, *, charge_id: str, amount: int, currency: str, reference: str, idempotency_key: str
    ) -> RefundResult:
        """Give back ``amount`` minor units of a captured charge; ``reference``: our refund id."""
        ...

    async def find_charge(self, *, reference: str) -> ChargeRecord | None:
        """What happened to the charge we made with ``reference``; None: it never reached us."""
        ...

    async def find_refund(self, *, reference: str) -> RefundRecord | None:
        """What happened to the refund we asked for with ``reference``; None: never made."""
        ...

    async def start(self) -> None:
        """Begin background work (a provider may push webhooks); called once per process."""
        ...

    async def aclose(self) -> None:
        """Stop background work and release connections."""
        ...
