"""Request and response models of the payments API (amounts in minor units, ISO currencies)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.platform.schema import MAX_AMOUNT, Amount, Currency, Id, Page, RequestBody

ProductName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_In = RequestBody


class ProductCreate(_In):
    name: ProductName
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    price_amount: Amount
    currency: Currency
    active: bool = True


class ProductUpdate(_In):
    name: ProductName | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    price_amount: Amount | None = None
    currency: Currency | None = None
    active: bool | None = None


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    price_amount: int
    currency: str
    active: bool
    created_at: datetime
    updated_at: datetime


class ProductPage(Page[ProductOut]):
    pass


class SearchHit(ProductOut):
    rank: float


class SearchResult(BaseModel):
    search_id: uuid.UUID = Field(description="quote it when reporting a click on a result")
    query: str
    items: list[SearchHit]


class CheckoutItem(_In):
    product_id: Id
    quantity: Annotated[int, Field(ge=1, le=1000)] = 1


class CheckoutRequest(_In):
    items: Annotated[list[CheckoutItem], Field(min_length=1, max_length=100)]
    payment_token: Annotated[
        str,
        StringConstraints(min_length=1, max_length=200),
        Field(description="a token from the provider's client side; see docs/payments.md"),
    ]


class OrderItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    product_id: uuid.UUID
    product_name: str
    unit_amount: int
    quantity: int
    line_amount: int


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: Literal["pending", "paid", "failed", "partially_refunded", "refunded"]
    currency: str
    total_amount: int
    refunded_amount: int
    items: list[OrderItemOut]
    created_at: datetime
    updated_at: datetime


class OrderPage(Page[OrderOut]):
    pass


class RefundRequest(_In):
    amount: Annotated[
        int | None,
        Field(ge=1, le=MAX_AMOUNT, description="minor units; omitted: all that remains"),
    ] = None
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class RefundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    order_id: uuid.UUID
    amount: int
    currency: str
    reason: str | None
    created_at: datetime


class WebhookAck(BaseModel):
    received: bool = True
    outcome: str
