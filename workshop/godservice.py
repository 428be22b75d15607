"""Scenario A's "before": checkout as a God service writes it, with the receipt sent inline.

Nothing here is in the deployable: the app never imports this package, and placed inside
``app/modules/payments`` this file breaks the independence contract (payments would reach into
notifications' rendering and senders instead of publishing ``OrderPaid``), which the scenario
shows by running ``lint-imports`` on such a copy. The route charges exactly as the real one
does, then renders and sends the receipt before answering: a bug in the receipt's rendering
becomes a failed checkout, for an order that is already paid.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Response, status

from app.modules.notifications.rendering import RENDERER
from app.modules.notifications.senders import Email, build_sender
from app.modules.payments.dependencies import AppSettings, Checkout, IdempotencyKey
from app.modules.payments.schemas import CheckoutRequest
from app.platform.web.security import CurrentPrincipal

router = APIRouter(prefix="/workshop")


@router.post("/checkout-coupled", status_code=status.HTTP_201_CREATED)
async def checkout_coupled(
    body: CheckoutRequest,
    principal: CurrentPrincipal,
    key: IdempotencyKey,
    checkouts: Checkout,
    settings: AppSettings,
) -> Response:
    """Checkout, then the receipt inside the same request (the coupling the outbox removes)."""
    result = await checkouts.checkout(user_id=principal.user_id, key=key, request=body)
    if result.status < 300 and not result.replayed:
        order = json.loads(result.body)
        receipt = RENDERER.render(
            "order_receipt",
            {
                "order_ref": order["id"].split("-")[0].upper(),
                "amount": f"{order['total_amount'] / 100:.2f} {order['currency']}",
            },
        )
        await build_sender(settings).send(
            Email(
                to=f"{principal.user_id}@example.com",
                subject=receipt.subject,
                text=receipt.text,
                html=receipt.html,
                message_id=f"<receipt-{order['id']}@workshop>",
            )
        )
    return Response(content=result.body, status_code=result.status, media_type="application/json")
