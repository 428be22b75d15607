"""What the seed invents: users, products, orders with items and payments, from one RNG.

Distributions (chosen to make the reports look like a real shop's):
- activity is diurnal (a peak at 20:00 UTC, a trough at 04:00), a little lower at weekends, and
  grows ~50% over the seeded period;
- product and search-term popularity are Zipf-like (rank ** -1.1): a few items take most clicks;
- the funnels drop off: ~72% of signups verify, ~45% of sessions search, ~38% of searches with
  results get a click (ranked positions, geometric), ~86% of checkouts are paid, ~4% of paid
  orders are refunded (in full or in part).

Everything derives from ``random.Random(seed)`` (events: one RNG per (seed, day), see
``events.py``) and an end date, so one (seed, end) pair always produces the same rows. Each table
gets one row generator in ``tables.py``.
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

from asyncpg.pgproto.pgproto import UUID as FastUUID

ADMIN_EMAIL = "admin@example.com"


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
    "red", "blue", "black", "white", "green", "wireless", "leather", "cotton", "organic",
    "vintage", "smart", "mini", "portable", "waterproof", "kids", "mens", "womens", "cheap",
    "premium", "bamboo", "steel", "ceramic", "wooden", "glass", "gaming", "ergonomic", "electric",
    "linen", "wool", "silk",
]  # fmt: skip
_NOUNS = [
    "shoes", "headphones", "jacket", "lamp", "chair", "desk", "mug", "backpack", "watch", "phone",
    "case", "keyboard", "mouse", "blender", "kettle", "sofa", "rug", "pillow", "blanket", "bottle",
    "tent", "bike", "helmet", "camera", "speaker", "charger", "cable", "shirt", "dress", "jeans",
    "scarf", "hat", "gloves", "socks", "wallet", "belt", "sunglasses", "notebook", "pen", "plant",
]  # fmt: skip
_QUALITIES = ["durable", "lightweight", "handmade", "compact", "everyday", "classic", "soft"]
_DECLINES = ("card_declined", "insufficient_funds")


def zipf_cum_weights(n: int, s: float = 1.1) -> list[float]:
    return list(accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)


def _uuid(rng: random.Random) -> uuid.UUID:
    """A random (version 4) UUID from the seed's RNG.

    asyncpg's C UUID (a ``uuid.UUID`` subclass that it also encodes without a detour) is built
    ~7x faster than the standard one; the world holds ~600k of them on the large preset.
    """
    bits = (rng.getrandbits(128) & _VERSION_MASK) | _VERSION_4
    made: uuid.UUID = FastUUID(bits.to_bytes(16, "big"))
    return made


# Hour-of-day weights (UTC): a cosine peaking at 20:00.
HOUR_WEIGHTS = [1.0 + 0.8 * math.cos(2 * math.pi * (h - 20) / 24) for h in range(24)]
HOUR_CUM = list(accumulate(HOUR_WEIGHTS))


def day_weights(days: int, first_day: datetime) -> list[float]:
    """Relative activity per day: +50% growth over the period, weekends at 85%."""
    out = []
    for d in range(days):
        weekend = (first_day + timedelta(days=d)).weekday() >= 5
        out.append((1.0 + 0.5 * d / max(1, days - 1)) * (0.85 if weekend else 1.0))
    return out


def random_moment(rng: random.Random, day_start: datetime) -> datetime:
    hour = bisect(HOUR_CUM, rng.random() * HOUR_CUM[-1])
    return day_start + timedelta(0, (hour + rng.random()) * 3600)


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    role: str  # 'member' or 'admin'
    signed_up_at: datetime
    verified_at: datetime | None  # None: not verified before the seeded period ends


@dataclass(frozen=True, slots=True)
class Product:
    id: uuid.UUID
    name: str
    description: str
    price: int  # minor units
    currency: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OrderItem:
    id: uuid.UUID
    product_id: uuid.UUID
    product_name: str
    unit_amount: int
    quantity: int

    @property
    def line_amount(self) -> int:
        return self.unit_amount * self.quantity


@dataclass(frozen=True, slots=True)
class Refund:
    id: uuid.UUID
    amount: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Order:
    """An order, its items and its one payment, settled as checkout leaves them."""

    id: uuid.UUID
    user_id: uuid.UUID
    items: tuple[OrderItem, ...]
    currency: str
    paid: bool  # False: the payment was declined
    at: datetime  # created, charged and settled (the fake provider answers at once)
    payment_id: uuid.UUID
    charge_id: str | None  # the provider's charge id of a succeeded payment
    failure_code: str | None
    refund: Refund | None  # paid orders only

    @property
    def amount(self) -> int:
        return sum(item.line_amount for item in self.items)

    @property
    def refunded(self) -> int:
        return self.refund.amount if self.refund else 0

    @property
    def status(self) -> str:
        if not self.paid:
            return "failed"
        if self.refund is None:
            return "paid"
        return "refunded" if self.refund.amount == self.amount else "partially_refunded"

    @property
    def payment_status(self) -> str:
        return "succeeded" if self.paid else "failed"

    @property
    def updated_at(self) -> datetime:
        return self.refund.at if self.refund else self.at


@dataclass
class World:
    """The invented population every table's rows are drawn from."""

    preset: Preset
    seed: int
    start: datetime  # first seeded day, 00:00 UTC
    end: datetime  # exclusive
    users: list[User]  # in sign-up order; the first is the admin
    products: list[Product]
    product_cum: list[float]  # Zipf popularity, in ``products`` order
    orders: list[Order]  # in time order
    anonymous_ids: list[str]
    terms: list[str]
    term_cum: list[float]

    @property
    def demo_member(self) -> User | None:
        """A verified member, one with orders if any: the account to try the API with."""
        buyer = self.orders[0].user_id if self.orders else None
        members = [u for u in self.users if u.role == "member" and u.verified_at is not None]
        return next((u for u in members if u.id == buyer), members[0] if members else None)


def _users(rng: random.Random, preset: Preset, start: datetime, end: datetime) -> list[User]:
    weights = list(accumulate(day_weights(preset.days, start)))
    admin_at = start + timedelta(minutes=1)
    users = [User(_uuid(rng), ADMIN_EMAIL, "admin", start, admin_at)]
    for i in range(1, preset.users):
        day = bisect(weights, rng.random() * weights[-1])
        at = random_moment(rng, start + timedelta(days=day))
        verified: datetime | None = None
        if rng.random() < 0.72:
            # Most verify within the hour, a tail takes days.
            verified = at + timedelta(seconds=rng.expovariate(1 / 1800) + 20)
            if rng.random() < 0.1:
                verified += timedelta(days=rng.expovariate(1 / 2))
            if verified >= end:
                verified = None
        users.append(User(_uuid(rng), f"user{i}@example.com", "member", at, verified))
    users.sort(key=lambda u: u.signed_up_at)
    return users


def _products(rng: random.Random, preset: Preset, start: datetime) -> list[Product]:
    out = []
    for i in range(preset.products):
        adjective, noun = rng.choice(_ADJECTIVES), rng.choice(_NOUNS)
        quality = rng.choice(_QUALITIES)
        price = int(math.exp(rng.gauss(8.0, 1.0))) // 100 * 100 + 99  # ~ 29.99 typical
        created = start - timedelta(seconds=rng.random() * 60 * 86_400)
        out.append(
            Product(
                _uuid(rng),
                f"{adjective} {noun} {i}".title(),
                f"A {quality} {adjective} {noun}, made to last.",
                max(price, 99),
                "EUR",
                created,
            )
        )
    return out


def _order(
    rng: random.Random,
    user: User,
    products: Sequence[Product],
    product_cum: Sequence[float],
    end: datetime,
) -> Order:
    assert user.verified_at is not None
    span = (end - user.verified_at).total_seconds()
    at = user.verified_at + timedelta(seconds=rng.random() * span)
    lines = 1 if rng.random() < 0.7 else (2 if rng.random() < 0.67 else 3)
    chosen: dict[uuid.UUID, Product] = {}
    while len(chosen) < min(lines, len(products)):
        product = products[bisect(product_cum, rng.random() * product_cum[-1])]
        chosen.setdefault(product.id, product)
    items = tuple(
        OrderItem(_uuid(rng), p.id, p.name, p.price, 1 if rng.random() < 0.8 else rng.randint(2, 4))
        for p in chosen.values()
    )
    paid = rng.random() < 0.86
    payment_id = _uuid(rng)
    if not paid:
        code = _DECLINES[int(rng.random() < 0.3)]
        return Order(_uuid(rng), user.id, items, "EUR", False, at, payment_id, None, code, None)
    total = sum(item.line_amount for item in items)
    refund = None
    if rng.random() < 0.04:
        refund_at = at + timedelta(seconds=rng.random() * (end - at).total_seconds())
        amount = total if rng.random() < 0.6 else max(1, total // 2)
        refund = Refund(_uuid(rng), amount, refund_at)
    charge_id = f"ch_{rng.getrandbits(128):032x}"
    return Order(_uuid(rng), user.id, items, "EUR", True, at, payment_id, charge_id, None, refund)


def build_world(preset: Preset, seed: int, end: datetime) -> World:
    """Users, products and orders; the events are generated later (they are the bulk)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    start = end - timedelta(days=preset.days)
    users = _users(rng, preset, start, end)
    products = _products(rng, preset, start)
    product_cum = zipf_cum_weights(len(products))
    # Members who verified buy; early users buy more.
    buyers = [u for u in users if u.verified_at is not None and u.role == "member"]
    count = int(preset.users * preset.orders_per_user) if buyers and products else 0
    orders = [
        _order(rng, buyers[int(rng.random() ** 2 * len(buyers))], products, product_cum, end)
        for _ in range(count)
    ]
    orders.sort(key=lambda o: o.at)
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
