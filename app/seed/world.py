"""What the seed invents: users, products, orders and product-event sessions, from one RNG.

Distributions (chosen to make the reports look like a real shop's):
- activity is diurnal (a peak at 20:00 UTC, a trough at 04:00), a little lower at weekends, and
  grows ~50% over the seeded period;
- product and search-term popularity are Zipf-like (rank ** -1.1): a few items take most clicks;
- the funnels drop off: ~72% of signups verify, ~45% of sessions search, ~38% of searches with
  results get a click (ranked positions, geometric), ~86% of checkouts are paid.

Everything derives from ``random.Random(seed)`` and an end date, so one (seed, end) pair always
produces the same rows. Each table gets one generator function (``*_rows``) in ``tables.py``.
"""

from __future__ import annotations

import math
import random
import uuid
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

# asyncpg's C UUID: a uuid.UUID (isinstance holds) built 4x faster, and COPY encodes it directly.
from asyncpg.pgproto.pgproto import UUID as FastUUID


@dataclass(frozen=True, slots=True)
class Preset:
    users: int
    products: int
    events: int
    days: int
    orders_per_user: float


PRESETS: dict[str, Preset] = {
    "small": Preset(users=5_000, products=500, events=200_000, days=30, orders_per_user=0.6),
    "large": Preset(users=200_000, products=5_000, events=5_000_000, days=90, orders_per_user=0.6),
}

_ADJECTIVES = [
    "red",
    "blue",
    "black",
    "white",
    "green",
    "wireless",
    "leather",
    "cotton",
    "organic",
    "vintage",
    "smart",
    "mini",
    "portable",
    "waterproof",
    "kids",
    "mens",
    "womens",
    "cheap",
    "premium",
    "bamboo",
    "steel",
    "ceramic",
    "wooden",
    "glass",
    "gaming",
    "ergonomic",
    "electric",
    "linen",
    "wool",
    "silk",
]
_NOUNS = [
    "shoes",
    "headphones",
    "jacket",
    "lamp",
    "chair",
    "desk",
    "mug",
    "backpack",
    "watch",
    "phone",
    "case",
    "keyboard",
    "mouse",
    "blender",
    "kettle",
    "sofa",
    "rug",
    "pillow",
    "blanket",
    "bottle",
    "tent",
    "bike",
    "helmet",
    "camera",
    "speaker",
    "charger",
    "cable",
    "shirt",
    "dress",
    "jeans",
    "scarf",
    "hat",
    "gloves",
    "socks",
    "wallet",
    "belt",
    "sunglasses",
    "notebook",
    "pen",
    "plant",
]
_PAGES = ("/", "/pricing", "/search", "/cart", "/account", "/blog", "/help", "/about")
_CUSTOM = ("newsletter.subscribed", "wishlist.added", "coupon.applied", "review.written")


def zipf_cum_weights(n: int, s: float = 1.1) -> list[float]:
    return list(accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


# Hour-of-day weights (UTC): a cosine peaking at 20:00.
HOUR_WEIGHTS = [1.0 + 0.8 * math.cos(2 * math.pi * (h - 20) / 24) for h in range(24)]
_HOUR_CUM = list(accumulate(HOUR_WEIGHTS))


def day_weights(days: int, first_day: datetime) -> list[float]:
    """Relative activity per day: +50% growth over the period, weekends at 85%."""
    out = []
    for d in range(days):
        weekend = (first_day + timedelta(days=d)).weekday() >= 5
        out.append((1.0 + 0.5 * d / max(1, days - 1)) * (0.85 if weekend else 1.0))
    return out


def random_moment(rng: random.Random, day_start: datetime) -> datetime:
    hour = bisect(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
    return day_start + timedelta(0, (hour + rng.random()) * 3600)


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    signed_up_at: datetime
    verified_at: datetime | None


@dataclass(frozen=True, slots=True)
class Product:
    id: uuid.UUID
    name: str
    price: int  # minor units
    currency: str


@dataclass(frozen=True, slots=True)
class Order:
    id: uuid.UUID
    user_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    amount: int
    currency: str
    paid: bool
    at: datetime


@dataclass
class World:
    """The invented population every table's rows are drawn from."""

    preset: Preset
    seed: int
    start: datetime  # first seeded day, 00:00 UTC
    end: datetime  # exclusive
    users: list[User]
    products: list[Product]
    product_cum: list[float]  # Zipf popularity, in ``products`` order
    orders: list[Order]
    anonymous_ids: list[str]
    terms: list[str]
    term_cum: list[float]


def _users(rng: random.Random, preset: Preset, start: datetime) -> list[User]:
    weights = list(accumulate(day_weights(preset.days, start)))
    users = []
    for i in range(preset.users):
        day = bisect(weights, rng.random() * weights[-1])
        at = random_moment(rng, start + timedelta(days=day))
        verified = None
        if rng.random() < 0.72:
            # Most verify within the hour, a tail takes days.
            verified = at + timedelta(seconds=rng.expovariate(1 / 1800) + 20)
            if rng.random() < 0.1:
                verified += timedelta(days=rng.expovariate(1 / 2))
        users.append(User(_uuid(rng), f"user{i}@example.test", at, verified))
    users.sort(key=lambda u: u.signed_up_at)
    return users


def _products(rng: random.Random, preset: Preset) -> list[Product]:
    out = []
    for i in range(preset.products):
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {i}"
        price = int(math.exp(rng.gauss(8.0, 1.0))) // 100 * 100 + 99  # ~ 29.99 typical
        out.append(Product(_uuid(rng), name.title(), max(price, 99), "EUR"))
    return out


def _orders(
    rng: random.Random,
    preset: Preset,
    world_users: Sequence[User],
    products: Sequence[Product],
    product_cum: Sequence[float],
    end: datetime,
) -> list[Order]:
    verified = [u for u in world_users if u.verified_at is not None and u.verified_at < end]
    count = int(preset.users * preset.orders_per_user)
    orders = []
    for _ in range(count if verified else 0):
        user = verified[int(rng.random() ** 2 * len(verified))]  # early users buy more
        assert user.verified_at is not None
        span = (end - user.verified_at).total_seconds()
        at = user.verified_at + timedelta(seconds=rng.random() * span)
        product = products[bisect(product_cum, rng.random() * product_cum[-1])]
        quantity = 1 if rng.random() < 0.8 else rng.randint(2, 4)
        paid = rng.random() < 0.86
        orders.append(
            Order(
                _uuid(rng),
                user.id,
                product.id,
                quantity,
                product.price * quantity,
                product.currency,
                paid,
                at,
            )
        )
    orders.sort(key=lambda o: o.at)
    return orders


def build_world(preset: Preset, seed: int, end: datetime) -> World:
    """Users, products and orders; the events are streamed later (they are the bulk)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    start = end - timedelta(days=preset.days)
    users = _users(rng, preset, start)
    products = _products(rng, preset)
    product_cum = zipf_cum_weights(len(products))
    orders = _orders(rng, preset, users, products, product_cum, end)
    terms = [f"{a} {n}" for a in _ADJECTIVES for n in _NOUNS] + list(_NOUNS)
    rng.shuffle(terms)
    anonymous_ids = [f"anon-{rng.getrandbits(64):016x}" for _ in range(preset.users * 3)]
    return World(
        preset=preset,
        seed=seed,
        start=start,
        end=end,
        users=users,
        products=products,
        product_cum=product_cum,
        orders=orders,
        anonymous_ids=anonymous_ids,
        terms=terms,
        term_cum=zipf_cum_weights(len(terms), s=1.05),
    )


EventRow = tuple[
    str,
    datetime,
    uuid.UUID | None,
    str | None,
    str | None,
    str | None,
    uuid.UUID | None,
    str | None,
    int | None,
    uuid.UUID | None,
    int | None,
    str | None,
]


def event_sessions(world: World) -> Iterator[list[EventRow]]:
    """Product events, one day's rows at a time, in time order (what the BRIN index expects).

    Each day's volume follows ``day_weights``; inside it, visitor sessions (page views, searches,
    clicks on ranked results, checkouts, custom events) until the day's quota is met.
    """
    rng = random.Random(world.seed * 7919 + 1)  # noqa: S311 - reproducible demo data
    preset = world.preset
    weights = day_weights(preset.days, world.start)
    total_w = sum(weights)
    quotas = [int(preset.events * w / total_w) for w in weights]
    quotas[-1] += preset.events - sum(quotas)
    user_ids, anon = [u.id for u in world.users], world.anonymous_ids
    products, pcum = world.products, world.product_cum
    product_paths = [f"/products/{p.id}" for p in products]
    terms, tcum = world.terms, world.term_cum
    ptotal, ttotal = pcum[-1], tcum[-1]
    rand, getrandbits, expovariate = rng.random, rng.getrandbits, rng.expovariate
    for day, quota in enumerate(quotas):
        day_start = world.start + timedelta(days=day)
        rows: list[EventRow] = []
        while len(rows) < quota:
            at = random_moment(rng, day_start)
            if rand() < 0.35:
                user_id: uuid.UUID | None = user_ids[int(rand() * len(user_ids))]
                anonymous_id: str | None = None
            else:
                user_id, anonymous_id = None, anon[int(rand() * len(anon))]
            step = timedelta(0, 5 + rand() * 40)
            for _ in range(1 + int(expovariate(0.7))):
                if rand() < 0.4:
                    path = product_paths[bisect(pcum, rand() * ptotal)]
                else:
                    path = _PAGES[int(rand() * rand() * len(_PAGES))]
                rows.append(
                    (
                        "page_view",
                        at,
                        user_id,
                        anonymous_id,
                        None,
                        path,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                    )
                )
                at += step
            if rand() < 0.45:
                search_id = FastUUID(getrandbits(128).to_bytes(16, "big"))
                term = terms[bisect(tcum, rand() * ttotal)]
                results = 0 if rand() < 0.07 else 1 + int(expovariate(1 / 40))
                rows.append(
                    (
                        "search",
                        at,
                        user_id,
                        anonymous_id,
                        None,
                        None,
                        search_id,
                        term,
                        results,
                        None,
                        None,
                        None,
                    )
                )
                at += step
                if results and rand() < 0.38:
                    for _ in range(1 if rand() < 0.85 else 2):
                        position = min(results, 1 + int(expovariate(0.45)))
                        pid = products[bisect(pcum, rand() * ptotal)].id
                        rows.append(
                            (
                                "search_click",
                                at,
                                user_id,
                                anonymous_id,
                                None,
                                None,
                                search_id,
                                None,
                                None,
                                pid,
                                position,
                                None,
                            )
                        )
                        at += step
                    if rand() < 0.15:
                        rows.append(
                            (
                                "checkout_started",
                                at,
                                user_id,
                                anonymous_id,
                                None,
                                None,
                                None,
                                None,
                                None,
                                None,
                                None,
                                None,
                            )
                        )
            if rand() < 0.03:
                name = _CUSTOM[int(rand() * len(_CUSTOM))]
                rows.append(
                    (
                        "custom",
                        at,
                        user_id,
                        anonymous_id,
                        name,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        '{"source": "seed"}',
                    )
                )
        del rows[quota:]
        if day == len(quotas) - 1:  # a late session must not run past the seeded period
            last = world.end - timedelta(microseconds=1)
            rows = [r if r[1] <= last else (r[0], last, *r[2:]) for r in rows]
        rows.sort(key=lambda r: r[1])
        yield rows
