"""The payments use cases: catalog, checkout, orders, refunds and provider webhooks.

They know no web framework; they flush and let the caller's unit of work commit, except checkout,
which runs its own short transactions around the provider's charge (see ``checkout``).
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
from app.modules.payments.service.refunds import RefundOutcome, refund_order
from app.modules.payments.service.webhooks import handle_webhook

__all__ = [
    "CheckoutResponse",
    "RefundOutcome",
    "checkout",
    "create_product",
    "deactivate_product",
    "get_order",
    "get_product",
    "handle_webhook",
    "list_orders",
    "list_products",
    "refund_order",
    "search_products",
    "update_product",
]
