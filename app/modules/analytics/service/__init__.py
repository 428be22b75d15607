"""Analytics use cases (no web framework here): ingestion, facts from other modules, reports.

Each use case is a class built with its session (and, in unit tests, a fake of its repository);
the validation helpers the dependencies call (keys, windows, limits, the bulkhead) are plain.
"""

from app.modules.analytics.service.batch_keys import (
    BATCH_KEY_TTL,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    check_key,
)
from app.modules.analytics.service.facts import FactsService
from app.modules.analytics.service.ingestion import (
    Ingested,
    IngestionService,
    IngestLimits,
    normalise_query,
    validate_batch,
)
from app.modules.analytics.service.reports import (
    FUNNEL_DEFINITIONS,
    Bulkhead,
    ReportsService,
    bucket_starts,
    check_window,
)

__all__ = [
    "BATCH_KEY_TTL",
    "FUNNEL_DEFINITIONS",
    "Bulkhead",
    "FactsService",
    "IdempotencyKeyInvalid",
    "IdempotencyKeyReused",
    "IngestLimits",
    "Ingested",
    "IngestionService",
    "ReportsService",
    "bucket_starts",
    "check_key",
    "check_window",
    "normalise_query",
    "validate_batch",
]
