"""The product-page cache: product reads by id kept in each process, invalidated in every one.

A product change sends ``pg_notify('payments_catalog', '<id> <updated_at>')`` inside its own
transaction, so every process hears of it exactly when it commits; the listener (wired in the
composition root) bumps that product's version here. An entry read under an older version is
dropped at its next read. Two races are closed:

- a read that began before a change and stores after it stores under the old version, so it
  is dropped at once;
- a read refilled from a replica that has not replayed the change yet would cache the old row
  under the new version: the notification carries the change's ``updated_at``, and a row older
  than that is served but not kept (the next read tries again).

Entries are kept per reader (the caller's user id; every anonymous caller shares one), since a
product page is the reader's own once it carries what only they see (their price, their
"bought before"); anonymous pages, most of the traffic, share one entry.

A lost LISTEN connection may have missed notifications: every (re)connect empties the cache.
The workshop's fault ``payments.catalog_freshness_skipped`` skips the version check for a stable
slice of readers, who then get the old price with a 200 for as long as their entry lives.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.modules.payments.metrics import catalog_cache_total
from app.modules.payments.schemas import ProductOut
from app.platform import faults

CHANNEL = "payments_catalog"

FRESHNESS_SKIPPED = faults.declare(
    "payments.catalog_freshness_skipped",
    "the product cache serves an entry without checking it is current, for a slice of readers",
)


@dataclass(frozen=True, slots=True)
class _Entry:
    version: int
    product: ProductOut


class ProductCache:
    """Bounded; the oldest entry goes first when it is full."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self.enabled = True
        # Trusted only while its invalidations can arrive (the LISTEN connection is up).
        self.live: Callable[[], bool] = lambda: False
        self._entries: dict[tuple[uuid.UUID, object], _Entry] = {}
        self._versions: dict[uuid.UUID, int] = {}
        self._changed_at: dict[uuid.UUID, datetime] = {}

    def version(self, product_id: uuid.UUID) -> int:
        return self._versions.get(product_id, 0)

    def get(self, product_id: uuid.UUID, reader: object | None) -> ProductOut | None:
        key = (product_id, reader)
        entry = self._entries.get(key) if self.enabled and self.live() else None
        if entry is None:
            catalog_cache_total.labels(outcome="miss").inc()
            return None
        if entry.version != self.version(product_id) and not FRESHNESS_SKIPPED.hits(reader):
            del self._entries[key]
            catalog_cache_total.labels(outcome="stale_dropped").inc()
            return None
        catalog_cache_total.labels(outcome="hit").inc()
        return entry.product

    def put(self, product: ProductOut, version: int, reader: object | None) -> None:
        """Keep ``reader``'s ``product``, read while the product's version was ``version``."""
        if not (self.enabled and self.live()):
            return
        changed = self._changed_at.get(product.id)
        if changed is not None and product.updated_at < changed:
            return  # a replica behind the change: serve this one read, keep nothing
        key = (product.id, reader)
        if len(self._entries) >= self.max_entries and key not in self._entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = _Entry(version, product)

    def changed(self, product_id: uuid.UUID, updated_at: datetime | None = None) -> None:
        self._versions[product_id] = self.version(product_id) + 1
        if updated_at is not None:
            self._changed_at[product_id] = updated_at

    def on_notify(self, payload: str) -> None:
        """A change announced on ``CHANNEL``: ``"<product id> <updated_at ISO 8601>"``."""
        ident, _, when = payload.partition(" ")
        try:
            self.changed(uuid.UUID(ident), datetime.fromisoformat(when) if when else None)
        except ValueError:
            self.clear()  # a payload this version cannot read: forget everything, to be safe

    def clear(self) -> None:
        self._entries.clear()


CACHE = ProductCache()
