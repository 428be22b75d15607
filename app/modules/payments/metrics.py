"""Business metrics of the payments module.

- ``payments_checkouts_total{outcome}``: checkouts that reached the provider, by outcome:
  ``succeeded``, ``declined`` (card declined, insufficient funds, invalid token), ``error``
  (provider error or timeout) and ``pending`` (the outcome arrives later by webhook). Replays of a
  stored idempotent response are not counted again.
- ``payments_refunds_total``: refunds issued (a replayed refund request is not counted again).
- ``payments_webhooks_total{outcome}``: provider webhook deliveries: ``applied``, ``ignored``
  (nothing to change, e.g. an outcome for a payment already settled), ``duplicate`` (an event id
  seen before), ``invalid_signature``, ``stale`` (timestamp outside the tolerance), ``malformed``.
- ``payments_checkout_duration_seconds``: wall time of a checkout, charge included.
- ``payments_catalog_cache_total{outcome}``: product-page cache lookups: ``hit``, ``miss``,
  ``stale_dropped`` (an entry older than the product's last change, dropped and read again).
"""

from __future__ import annotations

from app.platform.observability.registry import counter, histogram

CHECKOUT_OUTCOMES = ("succeeded", "declined", "error", "pending")
WEBHOOK_OUTCOMES = ("applied", "ignored", "duplicate", "invalid_signature", "stale", "malformed")

checkouts_total = counter(
    "payments_checkouts_total", "Checkouts that reached the payment provider", ["outcome"]
)
refunds_total = counter("payments_refunds_total", "Refunds issued")
webhooks_total = counter(
    "payments_webhooks_total", "Payment provider webhook deliveries", ["outcome"]
)
checkout_duration_seconds = histogram(
    "payments_checkout_duration_seconds",
    "Wall time of a checkout, the provider's charge included",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

catalog_cache_total = counter(
    "payments_catalog_cache_total", "Product-page cache lookups by outcome", ["outcome"]
)

# Every labelled series exists from the start, so rate() and alerts see a zero, not a gap.
for _outcome in CHECKOUT_OUTCOMES:
    checkouts_total.labels(outcome=_outcome)
for _outcome in WEBHOOK_OUTCOMES:
    webhooks_total.labels(outcome=_outcome)
for _outcome in ("hit", "miss", "stale_dropped"):
    catalog_cache_total.labels(outcome=_outcome)
