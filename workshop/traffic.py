"""The room's traffic: seeded shoppers on the real API, and what each request cost.

Users, products and search terms come from the seeded database (``make seed``); every user's
password is the seed's demo password. Requests run with a fixed concurrency; each is recorded
with its route, status and latency, so a round yields exact percentiles.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from app.seed.tables import DEMO_PASSWORD
from tools.pgstack import Stack

Step = Callable[[httpx.AsyncClient, "Shopper"], Awaitable[tuple[str, httpx.Response]]]


@dataclass
class SeedFacts:
    members: list[str]
    products: list[str]
    terms: list[str]


def seed_facts(stack: Stack, db: str, members: int = 12) -> SeedFacts:
    """Verified members, active products and words that search finds, from the database."""
    emails = stack.primary.psql(
        "SELECT email FROM auth_user WHERE role = 'member' AND email_verified_at IS NOT NULL "  # noqa: S608 - an int
        f"ORDER BY email LIMIT {int(members)}",
        db=db,
    ).split()
    products = stack.primary.psql(
        "SELECT id FROM payments_product WHERE active ORDER BY created_at DESC LIMIT 200", db=db
    ).split()
    words = stack.primary.psql(
        "SELECT DISTINCT split_part(name, ' ', 1) FROM payments_product WHERE active LIMIT 30",
        db=db,
    ).split()
    if not emails or not products:
        raise RuntimeError("the database has no seeded members or products: run make seed")
    return SeedFacts(emails, products, [w for w in words if w.isalpha()] or ["a"])


@dataclass
class Shopper:
    email: str
    token: str
    rng: random.Random
    facts: SeedFacts

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def product(self) -> str:
        return self.rng.choice(self.facts.products)


async def login(client: httpx.AsyncClient, email: str) -> str:
    resp = await client.post("/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
    resp.raise_for_status()
    token: str = resp.json()["access_token"]
    return token


@dataclass
class Sample:
    route: str
    status: int
    ms: float


@dataclass
class RoundLog:
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0

    def latencies(self, route: str | None = None) -> list[float]:
        return sorted(s.ms for s in self.samples if route is None or s.route == route)

    def share(self, predicate: Callable[[Sample], bool]) -> float:
        return sum(map(predicate, self.samples)) / len(self.samples) if self.samples else 0.0


async def shoppers(base_url: str, facts: SeedFacts, count: int, seed: int) -> list[Shopper]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        tokens = await asyncio.gather(*(login(client, email) for email in facts.members[:count]))
    return [
        Shopper(email, token, random.Random(seed + n), facts)  # noqa: S311 - a workload
        for n, (email, token) in enumerate(zip(facts.members, tokens, strict=False))
    ]


async def drive(
    base_url: str,
    people: list[Shopper],
    pick: Callable[[Shopper], Step],
    requests: int,
    timeout: float = 60.0,
) -> RoundLog:
    """``requests`` requests in all, one in flight per shopper, each step chosen by ``pick``."""
    log = RoundLog()
    remaining = requests

    async def one(client: httpx.AsyncClient, shopper: Shopper) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            step = pick(shopper)
            started = time.perf_counter()
            route, resp = await step(client, shopper)
            log.samples.append(
                Sample(route, resp.status_code, (time.perf_counter() - started) * 1e3)
            )

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=len(people), max_keepalive_connections=len(people))
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
        await asyncio.gather(*(one(client, shopper) for shopper in people))
    log.seconds = time.perf_counter() - started
    return log


# -- the steps of a shop's traffic (each returns its route template and the response) -------


async def browse(client: httpx.AsyncClient, s: Shopper) -> tuple[str, httpx.Response]:
    return "GET /v1/products", await client.get("/v1/products", params={"limit": 20})


async def search(client: httpx.AsyncClient, s: Shopper) -> tuple[str, httpx.Response]:
    q = s.rng.choice(s.facts.terms)
    return "GET /v1/products/search", await client.get("/v1/products/search", params={"q": q})


async def product(client: httpx.AsyncClient, s: Shopper) -> tuple[str, httpx.Response]:
    return "GET /v1/products/{id}", await client.get(f"/v1/products/{s.product()}")


async def inbox(client: httpx.AsyncClient, s: Shopper) -> tuple[str, httpx.Response]:
    return "GET /v1/notifications", await client.get("/v1/notifications", headers=s.headers())


async def orders(client: httpx.AsyncClient, s: Shopper) -> tuple[str, httpx.Response]:
    return "GET /v1/orders", await client.get("/v1/orders", headers=s.headers())


async def checkout(client: httpx.AsyncClient, s: Shopper) -> tuple[str, httpx.Response]:
    body = {"items": [{"product_id": s.product(), "quantity": 1}], "payment_token": "tok_success"}
    headers = {**s.headers(), "Idempotency-Key": uuid.uuid4().hex}
    return "POST /v1/checkout", await client.post("/v1/checkout", json=body, headers=headers)


def weighted(*steps: tuple[Step, float]) -> Callable[[Shopper], Step]:
    population = [step for step, _ in steps]
    weights = [weight for _, weight in steps]

    def pick(shopper: Shopper) -> Step:
        return shopper.rng.choices(population, weights)[0]

    return pick
