"""The product cache's rules without a database: versions, lagging refills, the fault."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from app.modules.payments.schemas import ProductOut
from app.modules.payments.service.cache import FRESHNESS_SKIPPED, ProductCache
from app.platform import faults

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _product(
    price: int, updated_at: datetime = T0, product_id: uuid.UUID | None = None
) -> ProductOut:
    return ProductOut(
        id=product_id or uuid.UUID(int=1),
        name="Lamp",
        description="",
        price_amount=price,
        currency="EUR",
        active=True,
        created_at=T0,
        updated_at=updated_at,
    )


@pytest.fixture
def cache() -> Iterator[ProductCache]:
    live = ProductCache(max_entries=3)
    live.live = lambda: True
    faults.apply({})
    yield live
    faults.apply({})


def test_a_change_drops_the_entry_and_a_read_from_before_it_is_not_kept(
    cache: ProductCache,
) -> None:
    lamp = _product(100)
    version = cache.version(lamp.id)
    cache.put(lamp, version, None)
    assert cache.get(lamp.id, None) == lamp
    # A read that began before a change stores under the old version: dropped at its next read.
    cache.changed(lamp.id, T0 + timedelta(seconds=1))
    assert cache.get(lamp.id, None) is None
    cache.put(lamp, version, None)
    assert cache.get(lamp.id, None) is None


def test_a_refill_from_a_replica_behind_the_change_is_served_but_not_kept(
    cache: ProductCache,
) -> None:
    changed_at = T0 + timedelta(seconds=5)
    cache.on_notify(f"{uuid.UUID(int=1)} {changed_at.isoformat()}")
    version = cache.version(uuid.UUID(int=1))
    cache.put(_product(100, updated_at=T0), version, None)  # the replica's old row
    assert cache.get(uuid.UUID(int=1), None) is None
    fresh = _product(150, updated_at=changed_at)
    cache.put(fresh, version, None)
    assert cache.get(fresh.id, None) == fresh


def test_nothing_is_cached_while_invalidations_cannot_arrive(cache: ProductCache) -> None:
    cache.live = lambda: False
    cache.put(_product(100), 0, None)
    cache.live = lambda: True
    assert cache.get(uuid.UUID(int=1), None) is None


def test_a_bad_payload_or_a_reconnect_forgets_everything(cache: ProductCache) -> None:
    cache.put(_product(100), 0, None)
    cache.on_notify("not-a-uuid")
    assert cache.get(uuid.UUID(int=1), None) is None
    cache.put(_product(100), 0, None)
    cache.clear()
    assert cache.get(uuid.UUID(int=1), None) is None


def test_the_cache_is_bounded_oldest_first(cache: ProductCache) -> None:
    ids = [uuid.UUID(int=n) for n in range(1, 5)]
    for ident in ids:
        cache.put(_product(100, product_id=ident), 0, None)
    assert cache.get(ids[0], None) is None
    assert all(cache.get(ident, None) is not None for ident in ids[1:])


def test_the_freshness_fault_serves_stale_entries_to_a_stable_slice_of_readers(
    cache: ProductCache,
) -> None:
    lamp = _product(100)
    readers = [uuid.UUID(int=n) for n in range(2000)]
    big = ProductCache(max_entries=10_000)
    big.live = lambda: True
    for r in readers:
        big.put(lamp, 0, r)
    faults.apply({FRESHNESS_SKIPPED.name: 0.08})
    big.changed(lamp.id)
    cache = big
    stale = [r for r in readers if cache.get(lamp.id, r) is not None]
    assert 0.05 < len(stale) / len(readers) < 0.11
    # The slice keeps getting the old entry; everyone else would have dropped it.
    assert all(cache.get(lamp.id, r) == lamp for r in stale)
    faults.apply({})
    assert cache.get(lamp.id, stale[0]) is None
