"""The outbox's metrics.

- ``events_published_total{event}``: events committed into the outbox.
- ``event_deliveries_total{listener,outcome}``: delivery attempts by outcome
  (``delivered``, ``retry``, ``failed``).
- ``event_delivery_duration_seconds{listener}``: time a listener took, per attempt.
- ``outbox_pending{listener}``: deliveries waiting (or running) per listener.
- ``outbox_oldest_pending_age_seconds``: age of the oldest undelivered delivery.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter("events_published_total", "Events committed into the outbox.", ["event"])
DELIVERIES = Counter(
    "event_deliveries_total",
    "Event delivery attempts by listener and outcome (delivered, retry, failed).",
    ["listener", "outcome"],
)
DELIVERY_DURATION = Histogram(
    "event_delivery_duration_seconds",
    "Time a listener took to handle one delivery attempt.",
    ["listener"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
# Every dispatcher reads the same table, so the processes agree: the live maximum is the value.
OUTBOX_PENDING = Gauge(
    "outbox_pending",
    "Deliveries not yet done or failed, per listener.",
    ["listener"],
    multiprocess_mode="livemax",
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest delivery not yet done or failed (0 when none).",
    multiprocess_mode="livemax",
)
