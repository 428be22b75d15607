"""Request and response models of the analytics API: event batches and reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from app.platform.schema import Id, Moment, RequestBody

Interval = Literal["hour", "day", "week"]


class _EventBase(RequestBody):
    model_config = ConfigDict(frozen=True)
    # The service checks properties itself and names the event's index (ingestion.py).
    check_storable = False

    # When it happened on the client; the server's receive time when omitted.
    occurred_at: Moment | None = None


class PageView(_EventBase):
    type: Literal["page_view"]
    path: str = Field(min_length=1)
    properties: dict[str, Any] | None = None


class Search(_EventBase):
    type: Literal["search"]
    search_id: Id
    query: str = Field(min_length=1)
    result_count: int = Field(ge=0, le=1_000_000_000)


class SearchClick(_EventBase):
    type: Literal["search_click"]
    search_id: Id
    product_id: Id
    position: int = Field(ge=1, le=100_000, description="1-based rank of the clicked result")


class CheckoutStarted(_EventBase):
    type: Literal["checkout_started"]
    properties: dict[str, Any] | None = None


class Custom(_EventBase):
    type: Literal["custom"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_.:-]*$", max_length=128)
    properties: dict[str, Any] | None = None


Event = Annotated[
    PageView | Search | SearchClick | CheckoutStarted | Custom, Field(discriminator="type")
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class EventBatch(RequestBody):
    """A batch of events from one client. Each event is validated by the service, so that every
    bad event of the batch is reported by its index, and the batch is refused as a whole."""

    # The service checks each event's properties (sizes, depth, finite numbers) by index.
    check_storable = False

    anonymous_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The device's id; needed when the request carries no access token",
    )
    events: list[dict[str, Any]] = Field(
        min_length=1,
        description=(
            "Each event has a 'type': page_view (path, properties), search (search_id, query, "
            "result_count), search_click (search_id, product_id, position), checkout_started "
            "(properties) or custom (name, properties); any may carry an RFC 3339 occurred_at"
        ),
    )


class BatchAccepted(BaseModel):
    accepted: int


class EventProblem(BaseModel):
    """One bad event of a refused batch: where (``index`` in ``events``, ``field``) and why."""

    index: int
    field: str | None
    reason: str


# -- reports ----------------------------------------------------------------------------------


class FunnelBucket(BaseModel):
    start: datetime
    end: datetime
    signups_started: int
    signups_verified: int
    signup_completion_rate: float | None
    checkouts_paid: int
    checkouts_failed: int
    checkout_success_rate: float | None
    searches: int
    searches_clicked: int
    search_to_click_ratio: float | None


class FunnelReport(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    interval: Interval
    definitions: dict[str, str]
    buckets: list[FunnelBucket]
    totals: FunnelBucket


class SearchTerm(BaseModel):
    term: str
    searches: int
    zero_result_searches: int


class SearchTermsReport(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    terms: list[SearchTerm]


class ClickedProduct(BaseModel):
    product_id: uuid.UUID
    clicks: int
    mean_position: float


class ClickedProductsReport(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    products: list[ClickedProduct]
