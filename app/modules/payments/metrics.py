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
- ``payments_reconciliations_total{kind, outcome}``: what the worker's reconciliation did, per
  ``kind`` (``payment``, ``refund``; ``key`` with ``released`` for keys whose request died before
  it created an order) and ``outcome``: ``succeeded``, ``failed`` (declined, or the provider never
  saw it), ``still_pending`` (the provider is deciding), ``in_flight`` (a live request holds the
  key), ``already_settled``, ``error`` (the provider did not answer the lookup).
- ``payments_pending_oldest_age_seconds{kind}``: age of the oldest pending ``payment`` and
  ``refund`` (0 when none), refreshed by every app process and worker.
- ``payments_idempotency_keys_purged_total``: expired idempotency keys the worker deleted.
"""

from __future__ import annotations

from app.platform.observability.registry import counter, gauge, histogram

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
RECONCILE_KINDS = ("payment", "refund")
RECONCILE_OUTCOMES = (
    "succeeded", "failed", "still_pending", "in_flight", "already_settled", "error",
)  # fmt: skip
reconciliations_total = counter(
    "payments_reconciliations_total",
    "What the reconciliation did with pending payments, refunds and stalled keys",
    ["kind", "outcome"],
)
pending_oldest_age_seconds = gauge(
    "payments_pending_oldest_age_seconds",
    "Age of the oldest pending payment or refund (0: none pending)",
    ["kind"],
    multiprocess_mode="livemax",
)
idempotency_keys_purged_total = counter(
    "payments_idempotency_keys_purged_total", "Expired idempotency keys deleted by the worker"
)

# Every labelled series exists from the start, so rate() and alerts see a zero, not a gap.
for _outcome in CHECKOUT_OUTCOMES:
    checkouts_total.labels(outcome=_outcome)
for _outcome in WEBHOOK_OUTCOMES:
    webhooks_total.labels(outcome=_outcome)
for _outcome in ("hit", "miss", "stale_dropped"):
    catalog_cache_total.labels(outcome=_outcome)
for _kind in RECONCILE_KINDS:
    pending_oldest_age_seconds.labels(kind=_kind)
    for _outcome in RECONCILE_OUTCOMES:
        reconciliations_total.labels(kind=_kind, outcome=_outcome)
reconciliations_total.labels(kind="key", outcome="released")
