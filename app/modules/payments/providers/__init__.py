"""The payment provider port and its adapters (the fake one for development and tests)."""

from app.modules.payments.providers.base import (
    ChargeResult,
    PaymentProvider,
    ProviderError,
    ProviderTimeout,
    RefundResult,
)
from app.modules.payments.providers.fake import FakePaymentProvider

__all__ = [
    "ChargeResult",
    "FakePaymentProvider",
    "PaymentProvider",
    "ProviderError",
    "ProviderTimeout",
    "RefundResult",
]
