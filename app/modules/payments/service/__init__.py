"""The payments use cases: catalog, checkout, orders, refunds, provider webhooks, worker jobs.

Each is a class built with its session (or, for the use cases that run their own short
transactions around the provider's call, a session factory) and its ports; they know no web
framework and flush, letting the caller's unit of work commit, except checkout and refunds
(see ``checkout`` and ``refunds``) and the worker's jobs (``reconciliation``).
"""

from app.modules.payments.service._common import PaymentsPorts
from app.modules.payments.service.catalog import CatalogReads, CatalogService
from app.modules.payments.service.checkout import CheckoutResponse, CheckoutService
from app.modules.payments.service.orders import OrdersService
from app.modules.payments.service.reconciliation import ReconcileReport, ReconciliationService
from app.modules.payments.service.refunds import RefundOutcome, RefundsService
from app.modules.payments.service.webhooks import WebhooksService

__all__ = [
    "CatalogReads",
    "CatalogService",
    "CheckoutResponse",
    "CheckoutService",
    "OrdersService",
    "PaymentsPorts",
    "ReconcileReport",
    "ReconciliationService",
    "RefundOutcome",
    "RefundsService",
    "WebhooksService",
]
