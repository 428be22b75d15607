"""Analytics use cases (no web framework here): ingestion, facts from other modules, reports."""

from app.modules.analytics.service.facts import (
    record_checkout,
    record_signup_started,
    record_signup_verified,
)
from app.modules.analytics.service.ingestion import (
    IngestLimits,
    count_stored,
    ingest,
    normalise_query,
    validate_batch,
)
from app.modules.analytics.service.reports import (
    FUNNEL_DEFINITIONS,
    Bulkhead,
    bucket_starts,
    check_window,
    funnel,
    most_clicked_products,
    top_search_terms,
)

__all__ = [
    "FUNNEL_DEFINITIONS",
    "Bulkhead",
    "IngestLimits",
    "bucket_starts",
    "check_window",
    "count_stored",
    "funnel",
    "ingest",
    "most_clicked_products",
    "normalise_query",
    "record_checkout",
    "record_signup_started",
    "record_signup_verified",
    "top_search_terms",
    "validate_batch",
]
