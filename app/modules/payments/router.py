"""HTTP endpoints of the payments module: catalog, checkout, orders, refunds, provider webhooks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.modules.payments.dependencies import (
    Catalog,
    CatalogReader,
    Checkout,
    IdempotencyKey,
    Orders,
    Refunds,
    Webhooks,
)
from app.modules.payments.providers.signing import SIGNATURE_HEADER
from app.modules.payments.schemas import (
    CheckoutRequest,
    OrderOut,
    OrderPage,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductUpdate,
    RefundOut,
    RefundRequest,
    SearchResult,
    WebhookAck,
)
from app.platform.errors import PROBLEM_CONTENT_TYPE
from app.platform.openapi import required_header
from app.platform.schema import INT64_MAX, Currency
from app.platform.web.problems import with_request_context
from app.platform.web.security import (
    AdminPrincipal,
    CurrentPrincipal,
    FreshPrincipal,
    OptionalPrincipal,
)

router = APIRouter(prefix="/v1", tags=["payments"])

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]
REPLAYED_HEADER = "Idempotent-Replayed"


# --- catalog ---------------------------------------------------------------------------------


@router.post("/products", status_code=status.HTTP_201_CREATED)
async def create_product(
    body: ProductCreate, catalog: Catalog, _admin: AdminPrincipal
) -> ProductOut:
    """Add a product to the catalog (admins)."""
    return await catalog.create_product(body)


@router.patch("/products/{product_id}")
async def update_product(
    product_id: uuid.UUID, body: ProductUpdate, catalog: Catalog, _admin: AdminPrincipal
) -> ProductOut:
    """Change a product (admins). Orders already placed keep the name and price they had."""
    return await catalog.update_product(product_id, body)


@router.delete("/products/{product_id}", status_code=status.HTTP_204_NO_CONTENT)
async def deactivate_product(
    product_id: uuid.UUID, catalog: Catalog, _admin: AdminPrincipal
) -> None:
    """Take a product off sale (admins); it stays in the history of past orders."""
    await catalog.deactivate_product(product_id)


@router.get("/products")
async def list_products(
    catalog: CatalogReader,
    principal: OptionalPrincipal,
    limit: Limit = 20,
    cursor: Cursor = None,
    currency: Annotated[Currency | None, Query()] = None,
    min_price: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
    max_price: Annotated[int | None, Query(ge=0, le=INT64_MAX)] = None,
    include_inactive: Annotated[bool, Query(description="admins only")] = False,
) -> ProductPage:
    """The catalog, newest first, from the read replica."""
    return await catalog.list_products(
        limit=limit,
        cursor=cursor,
        include_inactive=include_inactive and principal is not None and principal.has_role("admin"),
        currency=currency,
        min_price=min_price,
        max_price=max_price,
    )


@router.get("/products/search")
async def search_products(
    catalog: CatalogReader,
    q: Annotated[str, Query(min_length=1, max_length=200, description="web search syntax")],
    limit: Limit = 20,
) -> SearchResult:
    """Full-text search over names (weighted higher) and descriptions, best match first."""
    return await catalog.search_products(q, limit=limit)


@router.get("/products/{product_id}")
async def get_product(
    product_id: uuid.UUID, catalog: CatalogReader, principal: OptionalPrincipal
) -> ProductOut:
    """One product; an inactive one only for admins."""
    is_admin = principal is not None and principal.has_role("admin")
    reader = principal.user_id if principal is not None else None
    return await catalog.get_product(product_id, include_inactive=is_admin, reader=reader)


# --- checkout --------------------------------------------------------------------------------


@router.post(
    "/checkout",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    responses={
        202: {"model": OrderOut, "description": "charge pending; a webhook settles it"},
        402: {"description": "payment declined (problem)"},
        409: {"description": "a request with this key is still in progress (problem)"},
        422: {"description": "invalid cart, or key reused with another body (problem)"},
        502: {"description": "provider error, nothing charged (problem)"},
        504: {"description": "provider timeout, order pending (problem)"},
    },
)
async def checkout(
    request: Request,
    body: CheckoutRequest,
    principal: FreshPrincipal,
    key: IdempotencyKey,
    checkouts: Checkout,
) -> Response:
    """Buy the cart: create the order at today's prices and charge it, once per Idempotency-Key.

    Retrying with the same key and body returns the first response byte for byte.
    """
    result = await checkouts.checkout(user_id=principal.user_id, key=key, request=body)
    headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
    if result.status >= 400:
        # A stored answer from before problems named their request gets this request's id.
        content = with_request_context(result.body, request)
        return Response(content, result.status, headers, media_type=PROBLEM_CONTENT_TYPE)
    return Response(result.body, result.status, headers, media_type="application/json")


# --- orders ----------------------------------------------------------------------------------


@router.get("/orders")
async def list_orders(
    orders: Orders, principal: CurrentPrincipal, limit: Limit = 20, cursor: Cursor = None
) -> OrderPage:
    """The caller's orders, newest first, with their items.

    Read on the primary: a buyer expects the order they just placed to be listed.
    """
    return await orders.list_orders(principal.user_id, limit=limit, cursor=cursor)


@router.get("/orders/{order_id}")
async def get_order(order_id: uuid.UUID, orders: Orders, principal: CurrentPrincipal) -> OrderOut:
    """One of the caller's orders (another user's is 404)."""
    return await orders.get_order(principal.user_id, order_id)


@router.post(
    "/orders/{order_id}/refund",
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "nothing left to refund, or the key is in use (problem)"},
        502: {"description": "provider error, nothing refunded (problem)"},
        504: {"description": "provider timeout (problem)"},
    },
)
async def refund_order(
    order_id: uuid.UUID,
    body: RefundRequest,
    response: Response,
    refunds: Refunds,
    principal: FreshPrincipal,
    key: IdempotencyKey,
) -> RefundOut:
    """Refund all or part of a paid order (its buyer, or an admin for any order).

    A retry with the same Idempotency-Key returns the first refund instead of refunding again.
    """
    outcome = await refunds.refund_order(
        order_id=order_id,
        user_id=None if principal.has_role("admin") else principal.user_id,
        key=key,
        request=body,
    )
    if outcome.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return outcome.refund


# --- provider webhooks -----------------------------------------------------------------------


@router.post(
    "/payments/webhooks/provider",
    responses={
        400: {"description": "bad signature, stale timestamp or not an event (problem)"},
        413: {"description": "the body is over the limit (problem)"},
    },
)
async def provider_webhook(
    request: Request,
    webhooks: Webhooks,
    signature: Annotated[
        str | None, required_header(SIGNATURE_HEADER, "t=<unix time>,v1=<hex HMAC-SHA256>")
    ] = None,
) -> WebhookAck:
    """Asynchronous payment outcomes from the provider, signed with the shared webhook secret."""
    body = await request.body()
    outcome = await webhooks.handle(signature=signature, body=body)
    return WebhookAck(outcome=outcome)
