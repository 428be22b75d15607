"""The canary's metrics: checks, reads and mismatches by route, the slice of readers affected.

- ``canary_checks_total{outcome}``: journeys run: ``ok`` (every read matched), ``mismatch`` (at
  least one read returned another payload than the one just written), ``error`` (the journey
  could not finish: login refused, a 5xx, the API out of reach).
- ``canary_reads_total{route}``: reads compared with what was written, by route template.
- ``canary_mismatches_total{route}``: those that returned another payload (after a second look,
  so a replica a few milliseconds behind is not counted).
- ``canary_readers{route}`` and ``canary_stale_readers{route}``: in the last check, how many
  distinct canary users read the route and how many of them got another payload (the slice).
- ``canary_last_success_timestamp_seconds``: Unix time of the last journey that finished (ok or
  mismatch: the canary ran, whatever it found).
"""

from __future__ import annotations

from app.platform.observability.registry import counter, gauge

PRODUCT_ROUTE = "/v1/products/{product_id}"
SEARCH_ROUTE = "/v1/products/search"
ROUTES = (PRODUCT_ROUTE, SEARCH_ROUTE)
OUTCOMES = ("ok", "mismatch", "error")

checks_total = counter("canary_checks_total", "Canary journeys run, by outcome", ["outcome"])
reads_total = counter(
    "canary_reads_total", "Canary reads compared with what was just written", ["route"]
)
mismatches_total = counter(
    "canary_mismatches_total", "Canary reads that returned another payload than written", ["route"]
)
readers = gauge(
    "canary_readers",
    "Distinct canary users that read the route in the last check",
    ["route"],
    multiprocess_mode="max",
)
stale_readers = gauge(
    "canary_stale_readers",
    "Canary users that read another payload than written in the last check",
    ["route"],
    multiprocess_mode="max",
)
last_success = gauge(
    "canary_last_success_timestamp_seconds",
    "Unix time of the canary's last finished journey",
    multiprocess_mode="max",
)

# Every labelled series exists from the start, so increase() and the alerts see a zero, not a gap.
for _outcome in OUTCOMES:
    checks_total.labels(outcome=_outcome)
for _route in ROUTES:
    reads_total.labels(route=_route)
    mismatches_total.labels(route=_route)
