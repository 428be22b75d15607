"""Analytics business metrics (module-level, on the default Prometheus registry).

- ``analytics_events_total{type}``: events stored by ingestion, per event type. Searches and
  search clicks are its ``type="search"`` and ``type="search_click"`` series, so the live
  search-to-click ratio (clicks per search) is
  ``sum(rate(analytics_events_total{type="search_click"}[5m]))
  / sum(rate(analytics_events_total{type="search"}[5m]))``.
  (The funnel report's ratio is the share of searches with at least one click, which needs the
  join only the database can do; see docs/analytics.md.)
- ``analytics_batches_rejected_total{reason}``: ingestion batches refused whole
  (``invalid`` | ``too_large`` | ``no_actor`` | ``key_reused``).
- ``analytics_batches_replayed_total``: batches retried with the ``Idempotency-Key`` of a stored
  batch, answered as the first time and not stored again.
- ``analytics_report_seconds{report}``: report query time, successful or not.
- ``analytics_reports_rejected_total{report,reason}``: reports refused by the bulkhead
  (``reason="bulkhead"``, answered 503), cancelled by the statement timeout (``timeout``, 504)
  or by a replica recovery conflict (``conflict``, 503).
- ``analytics_reports_in_flight``: report queries running now in this process (the bulkhead's
  occupancy).
"""

from __future__ import annotations

from app.platform.observability.registry import counter, gauge, histogram

EVENTS = counter(
    "analytics_events_total",
    "Analytics events stored by ingestion, by event type.",
    ["type"],
)
BATCHES_REJECTED = counter(
    "analytics_batches_rejected_total",
    "Analytics ingestion batches refused whole, by reason.",
    ["reason"],
)
BATCHES_REPLAYED = counter(
    "analytics_batches_replayed_total",
    "Analytics ingestion batches recognised by their Idempotency-Key and not stored again.",
)
REPORT_SECONDS = histogram(
    "analytics_report_seconds",
    "Time spent running an analytics report's queries.",
    ["report"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REPORTS_REJECTED = counter(
    "analytics_reports_rejected_total",
    "Analytics reports not answered: bulkhead full, statement timeout or replica conflict.",
    ["report", "reason"],
)
REPORTS_IN_FLIGHT = gauge(
    "analytics_reports_in_flight",
    "Analytics report queries running now (summed over live worker processes).",
    multiprocess_mode="livesum",
)
