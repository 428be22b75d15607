"""The payment provider port and its adapters (the fake one for development and tests)."""

from app.modules.payments.providers.base import (
    ChargeRecord,
    ChargeResult,
    PaymentProvider,
    ProviderError,
    ProviderTimeout,
    RefundRecord,
    RefundResult,
)
from app.modules.payments.providers.fake import FakePaymentProvider, WebhookTarget

__all__ = [
    "ChargeRecord",
    "ChargeResult",
    "FakePaymentProvider",
    "PaymentProvider",
    "ProviderError",
    "ProviderTimeout",
    "RefundRecord",
    "RefundResult",
    "WebhookTarget",
]
