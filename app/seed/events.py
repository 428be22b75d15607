"""The bulk of the seed: product events, one day at a time, as PostgreSQL binary COPY rows.

Why binary, with explicit ids: measured on the 2-core box, the server parses binary rows about
1.6x cheaper than text (no timestamp or uuid parsing), and an id supplied by the seed saves the
identity's ``nextval()`` per row (another ~1.3x). Both leave more of the two cores to the
generator processes. The generator side is cheap too: every field that repeats (an actor, a
page path, a search term, a product id, a position) is encoded once as ``length + bytes`` and a
row is a concatenation of those pieces, with one ``struct`` call for its id and timestamp.
"""

from __future__ import annotations

import gc
import itertools
import math
import random
import struct
import uuid
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from operator import itemgetter
from typing import TypeVar

from app.seed.world import HOUR_WEIGHTS, World, day_weights

# The COPY column order: id and occurred_at first, so one struct call writes both.
COLUMNS = (
    "id",
    "occurred_at",
    "type",
    "user_id",
    "anonymous_id",
    "name",
    "path",
    "search_id",
    "query",
    "result_count",
    "product_id",
    "position",
    "properties",
)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = b"\xff\xff"

_PAGES = ("/", "/pricing", "/search", "/cart", "/account", "/blog", "/help", "/about")
_CUSTOM = ("newsletter.subscribed", "wishlist.added", "coupon.applied", "review.written")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # binary timestamptz: microseconds since then
_DAY_US = 86_400_000_000
# Signed-in sessions only once a few users exist (the first day's would all be one user).
_MIN_KNOWN_USERS = 20
_MAX_RESULTS = 10_000  # result counts and positions are encoded from a table this long

_NULL = b"\xff\xff\xff\xff"
_I4 = struct.Struct("!i").pack
# Field count, id (length + int8), occurred_at (length + int8): the head of every row.
_ROW_HEAD = struct.Struct("!hiqiq").pack


def _text(value: str) -> bytes:
    data = value.encode()
    return _I4(len(data)) + data


def _uuid(raw: bytes) -> bytes:
    return b"\x00\x00\x00\x10" + raw


def _int4(value: int) -> bytes:
    return b"\x00\x00\x00\x04" + _I4(value)


@dataclass(frozen=True)
class EventPools:
    """What a worker process needs to invent one day of events (picklable, plain values)."""

    seed: int
    start: datetime
    quotas: list[int]  # events per day
    first_ids: list[int]  # the id of each day's first event
    users_by_day: list[int]  # users signed up before each day starts (a prefix of user_ids)
    user_ids: list[bytes]  # 16 bytes each, in sign-up order
    anonymous_ids: list[str]
    product_ids: list[bytes]  # 16 bytes each
    product_cum: list[float]  # Zipf popularity, in ``product_ids`` order
    terms: list[str]
    term_cum: list[float]


def event_pools(world: World, first_id: int = 1) -> EventPools:
    weights = day_weights(world.preset.days, world.start)
    total = sum(weights)
    quotas = [int(world.preset.events * w / total) for w in weights]
    quotas[-1] += world.preset.events - sum(quotas)
    first_ids, next_id = [], first_id
    for quota in quotas:
        first_ids.append(next_id)
        next_id += quota
    signed_up = [u.signed_up_at for u in world.users]
    return EventPools(
        seed=world.seed,
        start=world.start,
        quotas=quotas,
        first_ids=first_ids,
        users_by_day=[
            bisect(signed_up, world.start + timedelta(days=d)) for d in range(len(quotas))
        ],
        user_ids=[u.id.bytes for u in world.users],
        anonymous_ids=world.anonymous_ids,
        product_ids=[p.id.bytes for p in world.products],
        product_cum=world.product_cum,
        terms=world.terms,
        term_cum=world.term_cum,
    )


T = TypeVar("T")
_BITS = 20  # sampling tables of 2**20 slots: no value likelier than 1e-6 is lost


def _sampling_table(values: Sequence[T], weights: Sequence[float], bits: int = _BITS) -> list[T]:
    """Each value repeated in proportion to its weight, 2**bits slots in all.

    A draw is then ``table[getrandbits(bits)]``: one call and one index, where ``bisect`` over
    cumulative weights (or ``random.choices``) costs several times more per row.
    """
    size, total, acc = 1 << bits, sum(weights), 0.0
    table: list[T] = []
    for value, weight in zip(values, weights, strict=True):
        acc += weight
        table.extend([value] * (round(acc / total * size) - len(table)))
    return table


def _floor_exponential(rate: float, upto: int) -> list[float]:
    """P(int(expovariate(rate)) == k) for k < upto: geometric."""
    q = math.exp(-rate)
    return [(1 - q) * q**k for k in range(upto)]


def _diffs(cum: Sequence[float]) -> list[float]:
    return [b - a for a, b in zip([0.0, *cum], cum, strict=False)]


@dataclass(frozen=True)
class _Encoded:
    """The pools' repeating values, each encoded once per process as a binary COPY field, and
    the sampling tables that draw them."""

    user_actors: list[bytes]  # user_id, then a NULL anonymous_id
    anonymous_actors: list[bytes]  # a NULL user_id, then anonymous_id
    hour_starts: list[int]  # microseconds into the day, diurnal
    views: list[int]  # page views per session: 1 + geometric
    # name NULL, path, then the 6 NULLs after it: 40% product pages (Zipf), 60% site pages
    page_tails: list[bytes]
    product_fields: list[bytes]  # clicked products (Zipf)
    term_fields: list[bytes]  # search terms (Zipf)
    results: list[int]  # result count of a search: 7% none, else 1 + geometric (mean ~40)
    positions: list[int]  # clicked rank: 1 + geometric
    ints: list[bytes]  # int4 fields for 0 .. _MAX_RESULTS


# Per process, for the pools it was last given (held, so the identity check cannot be fooled).
_encoded: tuple[EventPools, _Encoded] | None = None


def _encode(pools: EventPools) -> _Encoded:
    global _encoded
    if _encoded is not None and _encoded[0] is pools:
        return _encoded[1]
    nulls6 = _NULL * 6

    def page(path: str) -> bytes:
        return _NULL + _text(path) + nulls6

    product_weights = _diffs(pools.product_cum)
    product_pages = [page(f"/products/{uuid.UUID(bytes=raw)}") for raw in pools.product_ids]
    # Site pages: index int(u1 * u2 * 8) for uniform u1, u2 (the product's CDF is x - x ln x).
    cdf = [0.0] + [x - x * math.log(x) for x in (i / len(_PAGES) for i in range(1, 9))]
    site_weights = [0.6 * (b - a) for a, b in itertools.pairwise(cdf)]
    total_products = sum(product_weights)
    no_results = 0.07
    results = _floor_exponential(1 / 40, 1_000)
    encoded = _Encoded(
        user_actors=[_uuid(u) + _NULL for u in pools.user_ids],
        anonymous_actors=[_NULL + _text(a) for a in pools.anonymous_ids],
        hour_starts=_sampling_table([h * 3_600_000_000 for h in range(24)], HOUR_WEIGHTS, 16),
        views=_sampling_table(range(1, 41), _floor_exponential(0.7, 40), 16),
        page_tails=_sampling_table(
            [*product_pages, *(page(p) for p in _PAGES)],
            [*(0.4 * w / total_products for w in product_weights), *site_weights],
        ),
        product_fields=_sampling_table([_uuid(p) for p in pools.product_ids], product_weights),
        term_fields=_sampling_table([_text(t) for t in pools.terms], _diffs(pools.term_cum)),
        results=_sampling_table(
            range(1_001), [no_results, *((1 - no_results) * p for p in results)], 16
        ),
        positions=_sampling_table(range(1, 61), _floor_exponential(0.45, 60), 16),
        ints=[_int4(i) for i in range(_MAX_RESULTS + 1)],
    )
    _encoded = (pools, encoded)
    gc.freeze()  # the tables are permanent: no collection needs to walk their millions of slots
    return encoded


_T_PAGE_VIEW, _T_SEARCH, _T_CLICK, _T_CHECKOUT, _T_CUSTOM = (
    _text(t) for t in ("page_view", "search", "search_click", "checkout_started", "custom")
)
_PROPERTIES = b"\x01" + b'{"source": "seed"}'  # binary jsonb: a version byte, then the text
_CUSTOM_TAILS = [_text(n) + _NULL * 6 + _I4(len(_PROPERTIES)) + _PROPERTIES for n in _CUSTOM]
_first = itemgetter(0)


def event_day(pools: EventPools, day: int) -> bytes:
    """One day of product events as binary COPY rows (no header), in time order (the BRIN's).

    Visitor sessions (page views, searches, clicks on ranked results, checkouts, custom events)
    until the day's quota is met. The RNG is seeded per (seed, day), so days can be made in
    parallel processes and the output does not depend on how many there are.
    """
    enc = _encode(pools)
    rng = random.Random(f"{pools.seed}:{day}")  # noqa: S311 - reproducible demo data
    rand, bits = rng.random, rng.getrandbits
    quota = pools.quotas[day]
    users, anon = enc.user_actors, enc.anonymous_actors
    known_users, anon_count = pools.users_by_day[day], len(anon)
    hours, views, pages, products = enc.hour_starts, enc.views, enc.page_tails, enc.product_fields
    terms, results_of, positions, ints = enc.term_fields, enc.results, enc.positions, enc.ints
    signed_in = 0.35 if known_users >= _MIN_KNOWN_USERS else 0.0
    null2, null3, null8 = _NULL * 2, _NULL * 3, _NULL * 8
    day_start = (pools.start - _PG_EPOCH) // timedelta(microseconds=1) + day * _DAY_US
    rows: list[tuple[int, bytes]] = []  # (timestamp in microseconds, the row after its head)
    append = rows.append
    gc_was_on = gc.isenabled()
    gc.disable()  # only acyclic bytes and tuples here; collections would only rescan the tables
    try:
        while len(rows) < quota:
            t = day_start + hours[bits(16)] + int(rand() * 3_600_000_000)
            if rand() < signed_in:
                actor = users[int(rand() * known_users)]
            else:
                actor = anon[int(rand() * anon_count)]
            step = int(5_000_000 + rand() * 40_000_000)
            page_view = _T_PAGE_VIEW + actor
            for _ in range(views[bits(16)]):
                append((t, page_view + pages[bits(20)]))
                t += step
            if rand() < 0.45:
                search_id = _uuid(bits(128).to_bytes(16, "big"))
                results = results_of[bits(16)]
                term = terms[bits(20)]
                append((t, _T_SEARCH + actor + null2 + search_id + term + ints[results] + null3))
                t += step
                if results and rand() < 0.38:
                    click = _T_CLICK + actor + null2 + search_id + null2
                    for _ in range(1 if rand() < 0.85 else 2):
                        position = min(results, positions[bits(16)])
                        append((t, click + products[bits(20)] + ints[position] + _NULL))
                        t += step
                    if rand() < 0.15:
                        append((t, _T_CHECKOUT + actor + null8))
            if rand() < 0.03:
                append((t, _T_CUSTOM + actor + _CUSTOM_TAILS[bits(2)]))
        del rows[quota:]
        rows.sort(key=_first)
        # A late session spills into the next day, but not past the seeded period.
        ceiling = day_start + (_DAY_US if day == len(pools.quotas) - 1 else 2 * _DAY_US) - 1
        late = bisect(rows, (ceiling, b"\xff"))
        rows[late:] = [(ceiling, rest) for _, rest in rows[late:]]
        return b"".join(
            [
                _ROW_HEAD(13, 8, i, 8, t) + rest
                for i, (t, rest) in zip(count(pools.first_ids[day]), rows)
            ]
        )
    finally:
        if gc_was_on:
            gc.enable()
