"""HTTP endpoints of analytics: event ingestion and the admin reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Response

from app.modules.analytics.dependencies import (
    BatchKey,
    BulkheadRoute,
    Ingestion,
    Limits,
    Reports,
    Window,
    report_slot,
)
from app.modules.analytics.schemas import (
    BatchAccepted,
    ClickedProductsReport,
    EventBatch,
    FunnelReport,
    Interval,
    SearchTermsReport,
)
from app.platform.web.security import AdminPrincipal, OptionalPrincipal

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])
# A full bulkhead refuses a report before anything else runs (BulkheadRoute). Otherwise the
# handlers' dependencies run in the order declared: the caller is checked, then the window, and
# only then is a bulkhead slot taken, before the report's session is used.
reports = APIRouter(prefix="/reports", route_class=BulkheadRoute)

REPLAYED_HEADER = "Idempotent-Replayed"
_REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed Idempotency-Key"},
    422: {
        "description": (
            "The batch was refused whole (`errors` names each bad event's index), or its "
            "Idempotency-Key was used for another batch"
        )
    },
}
_REPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid window: from >= to, range too long, or interval unknown"},
    503: {"description": "Too many reports running (see Retry-After)"},
    504: {"description": "The report exceeded its statement timeout and was cancelled"},
}


@router.post("/events", status_code=202, response_model=BatchAccepted, responses=_REFUSED)
async def ingest_events(
    batch: EventBatch,
    principal: OptionalPrincipal,
    key: BatchKey,
    ingestion: Ingestion,
    limits: Limits,
    background: BackgroundTasks,
    response: Response,
) -> BatchAccepted:
    """Store a batch of product events, all or nothing, in one insert.

    Signed-in clients send their access token; anonymous ones an `anonymous_id`. With an
    `Idempotency-Key`, a retried batch is stored once and answered as the first time (with
    `Idempotent-Replayed: true`).
    """
    result = await ingestion.ingest(
        batch.events,
        user_id=principal.user_id if principal else None,
        anonymous_id=batch.anonymous_id,
        limits=limits,
        key=key,
    )
    if result.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    # Background tasks run after the response, so after the commit: only stored events count.
    background.add_task(ingestion.count_stored, result.counts)
    return BatchAccepted(accepted=result.accepted)


@reports.get(
    "/funnel",
    response_model=FunnelReport,
    response_model_by_alias=True,
    responses=_REPORT_ERRORS,
)
async def funnel_report(
    _: AdminPrincipal,
    window: Window,
    _slot: Annotated[None, report_slot("funnel")],
    service: Reports,
    interval: Annotated[Interval, Query()] = "day",
) -> FunnelReport:
    """Signup completion, checkout success and search-to-click per interval (admin)."""
    return await service.funnel(window.start, window.end, interval, window.timeout_ms)


@reports.get(
    "/search-terms",
    response_model=SearchTermsReport,
    response_model_by_alias=True,
    responses=_REPORT_ERRORS,
)
async def search_terms_report(
    _: AdminPrincipal,
    window: Window,
    _slot: Annotated[None, report_slot("search_terms")],
    service: Reports,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchTermsReport:
    """The most frequent search terms in the window, with how many found nothing (admin)."""
    return await service.top_search_terms(window.start, window.end, limit, window.timeout_ms)


@reports.get(
    "/clicked-products",
    response_model=ClickedProductsReport,
    response_model_by_alias=True,
    responses=_REPORT_ERRORS,
)
async def clicked_products_report(
    _: AdminPrincipal,
    window: Window,
    _slot: Annotated[None, report_slot("clicked_products")],
    service: Reports,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ClickedProductsReport:
    """The products most clicked from search results in the window (admin)."""
    return await service.most_clicked_products(window.start, window.end, limit, window.timeout_ms)


router.include_router(reports)
