"""The payments use cases: catalog, checkout, orders, refunds and provider webhooks.

They know no web framework; they flush and let the caller's unit of work commit, except checkout,
and refunds, which run their own short transactions around the provider's call (see
``checkout`` and ``refunds``), and the worker's jobs (``reconciliation``).
"""

from app.modules.payments.service.catalog import (
    create_product,
    deactivate_product,
    get_product,
    list_products,
    search_products,
    update_product,
)
from app.modules.payments.service.checkout import CheckoutResponse, checkout
from app.modules.payments.service.orders import get_order, list_orders
from app.modules.payments.service.reconciliation import (
    ReconcileReport,
    observe_pending,
    purge_expired_keys,
    reconcile,
)
from app.modules.payments.service.refunds import RefundOutcome, refund_order
from app.modules.payments.service.webhooks import handle_webhook

__all__ = [
    "CheckoutResponse",
    "ReconcileReport",
    "RefundOutcome",
    "checkout",
    "create_product",
    "deactivate_product",
    "get_order",
    "get_product",
    "handle_webhook",
    "list_orders",
    "list_products",
    "observe_pending",
    "purge_expired_keys",
    "reconcile",
    "refund_order",
    "search_products",
    "update_product",
]
