"""Analytics use cases (no web framework here): ingestion, facts from other modules, reports."""

from app.modules.analytics.service.batch_keys import (
    BATCH_KEY_TTL,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    check_key,
    purge_expired,
)
from app.modules.analytics.service.facts import (
    record_checkout,
    record_signup_started,
    record_signup_verified,
)
from app.modules.analytics.service.ingestion import (
    Ingested,
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
    "BATCH_KEY_TTL",
    "FUNNEL_DEFINITIONS",
    "Bulkhead",
    "IdempotencyKeyInvalid",
    "IdempotencyKeyReused",
    "IngestLimits",
    "Ingested",
    "bucket_starts",
    "check_key",
    "check_window",
    "count_stored",
    "funnel",
    "ingest",
    "most_clicked_products",
    "normalise_query",
    "purge_expired",
    "record_checkout",
    "record_signup_started",
    "record_signup_verified",
    "top_search_terms",
    "validate_batch",
]
