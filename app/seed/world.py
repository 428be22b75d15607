"""What the seed invents: users, products, orders and product-event sessions, from one RNG.

Distributions (chosen to make the reports look like a real shop's):
- activity is diurnal (a peak at 20:00 UTC, a trough at 04:00), a little lower at weekends, and
  grows ~50% over the seeded period;
- product and search-term popularity are Zipf-like (rank ** -1.1): a few items take most clicks;
- the funnels drop off: ~72% of signups verify, ~45% of sessions search, ~38% of searches with
  results get a click (ranked positions, geometric), ~86% of checkouts are paid.

Everything derives from ``random.Random(seed)`` (events: one RNG per (seed, day)) and an end date,
so one (seed, end) pair always produces the same rows. Each table gets one generator function in
``tables.py``.
"""

from __future__ import annotations

import math
import random
import uuid
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate


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


@dataclass(frozen=True)
class EventPools:
    """What a worker process needs to invent one day of events (picklable, as text already)."""

    seed: int
    start: datetime
    quotas: list[int]  # events per day
    user_ids: list[str]
    anonymous_ids: list[str]
    product_paths: list[str]
    product_ids: list[str]
    product_cum: list[float]
    terms: list[str]
    term_cum: list[float]


def event_pools(world: World) -> EventPools:
    weights = day_weights(world.preset.days, world.start)
    total = sum(weights)
    quotas = [int(world.preset.events * w / total) for w in weights]
    quotas[-1] += world.preset.events - sum(quotas)
    return EventPools(
        seed=world.seed,
        start=world.start,
        quotas=quotas,
        user_ids=[u.id.hex for u in world.users],
        anonymous_ids=world.anonymous_ids,
        product_paths=[f"/products/{p.id}" for p in world.products],
        product_ids=[p.id.hex for p in world.products],
        product_cum=world.product_cum,
        terms=world.terms,
        term_cum=world.term_cum,
    )


_N = "\\N"  # NULL in COPY's text format
_N2, _N3, _N6 = (f"\t{_N}" * k for k in (2, 3, 6))
_SEED_PROPERTIES = '{"source": "seed"}'


def event_day(pools: EventPools, day: int) -> bytes:
    """One day of product events as COPY text rows, in time order (what the BRIN index expects).

    Visitor sessions (page views, searches, clicks on ranked results, checkouts, custom events)
    until the day's quota is met. The RNG is seeded per (seed, day), so days can be made in
    parallel processes and the output does not depend on how many there are.
    """
    rng = random.Random(f"{pools.seed}:{day}")  # noqa: S311 - reproducible demo data
    rand, getrandbits, expovariate = rng.random, rng.getrandbits, rng.expovariate
    quota, last_day = pools.quotas[day], len(pools.quotas) - 1
    users, anon = pools.user_ids, pools.anonymous_ids
    paths, pids, pcum = pools.product_paths, pools.product_ids, pools.product_cum
    terms, tcum = pools.terms, pools.term_cum
    ptotal, ttotal, hour_total = pcum[-1], tcum[-1], _HOUR_CUM[-1]
    rows: list[tuple[float, str, str]] = []  # (seconds into the day, type, the other columns)
    while len(rows) < quota:
        t = (bisect(_HOUR_CUM, rand() * hour_total) + rand()) * 3600.0  # seconds into the day
        if rand() < 0.35:
            actor = f"{users[int(rand() * len(users))]}\t{_N}"
        else:
            actor = f"{_N}\t{anon[int(rand() * len(anon))]}"
        step = 5 + rand() * 40
        for _ in range(1 + int(expovariate(0.7))):
            if rand() < 0.4:
                path = paths[bisect(pcum, rand() * ptotal)]
            else:
                path = _PAGES[int(rand() * rand() * len(_PAGES))]
            rows.append((t, "page_view", f"{actor}\t{_N}\t{path}{_N6}"))
            t += step
        if rand() < 0.45:
            search_id = f"{getrandbits(128):032x}"
            term = terms[bisect(tcum, rand() * ttotal)]
            results = 0 if rand() < 0.07 else 1 + int(expovariate(1 / 40))
            rows.append((t, "search", f"{actor}{_N2}\t{search_id}\t{term}\t{results}{_N3}"))
            t += step
            if results and rand() < 0.38:
                for _ in range(1 if rand() < 0.85 else 2):
                    position = min(results, 1 + int(expovariate(0.45)))
                    pid = pids[bisect(pcum, rand() * ptotal)]
                    click = f"{search_id}{_N2}\t{pid}\t{position}\t{_N}"
                    rows.append((t, "search_click", f"{actor}{_N2}\t{click}"))
                    t += step
                if rand() < 0.15:
                    rows.append((t, "checkout_started", f"{actor}{_N6}{_N2}"))
        if rand() < 0.03:
            name = _CUSTOM[int(rand() * len(_CUSTOM))]
            rows.append((t, "custom", f"{actor}\t{name}{_N6}\t{_SEED_PROPERTIES}"))
    del rows[quota:]
    rows.sort(key=lambda r: r[0])
    day_start = pools.start + timedelta(days=day)
    # "YYYY-MM-DD HH:MM:" for every minute of this day and the next (late sessions spill over).
    minutes = [
        f"{day_start + timedelta(days=d):%Y-%m-%d} {h:02d}:{m:02d}:"
        for d in range(2)
        for h in range(24)
        for m in range(60)
    ]
    # A late session must not run past the seeded period.
    ceiling = 86_400_000_000 - 1 if day == last_day else 2 * 86_400_000_000 - 1
    out = []
    for t, kind, rest in rows:
        micros = min(int(t * 1_000_000), ceiling)
        minute, micros = divmod(micros, 60_000_000)
        seconds, micros = divmod(micros, 1_000_000)
        out.append(f"{kind}\t{minutes[minute]}{seconds:02d}.{micros:06d}+00\t{rest}")
    out.append("")
    return "\n".join(out).encode()
