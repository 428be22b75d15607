"""What the journeys draw on, read from the seeded system through its API before the run.

The demo data of ``python -m app seed`` (docs/analytics.md): the admin ``admin@example.com``,
members ``userN@example.com``, every password ``demo-Password-1``, 500 products (small preset).
Setup signs the admin in, pages through ``GET /v1/auth/users`` for verified members and through
``GET /v1/products`` for the catalog, and takes search terms from the product names. None of it
is recorded: the measured window starts after it.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import gevent.lock
import gevent.pool
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

DEMO_PASSWORD = "demo-Password-1"  # noqa: S105 - the seed's documented demo password
ADMIN_EMAIL = "admin@example.com"
MISSES = ("unobtainium", "zzxq flux capacitor")  # searches that find nothing
_WORD = re.compile(r"[a-z]{4,}")
# Setup waits as long as a login at the seed's argon2 cost takes on a busy machine; no retries.
SETUP_HTTP = {"network_timeout": 180.0, "connection_timeout": 60.0, "max_retries": 0}


class SetupFailed(RuntimeError):
    """The system under test is not seeded or not reachable the way the journeys need."""


@dataclass
class Account:
    email: str
    password: str
    access: str = ""
    refresh: str = ""
    access_until: float = 0.0

    def signed_in(self) -> bool:
        return bool(self.access) and time.time() < self.access_until - 30

    def take(self, pair: dict[str, Any]) -> None:
        self.access = pair["access_token"]
        self.refresh = pair["refresh_token"]
        self.access_until = time.time() + float(pair["expires_in"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class Product:
    id: str
    price: int
    currency: str


@dataclass
class World:
    admin: Account
    members: list[Account]
    products: list[Product]
    terms: list[str]
    by_currency: dict[str, list[Product]] = field(default_factory=dict)
    admin_lock: gevent.lock.Semaphore = field(default_factory=gevent.lock.Semaphore)
    _checkouts: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        groups: dict[str, list[Product]] = defaultdict(list)
        for product in self.products:
            groups[product.currency].append(product)
        self.by_currency = dict(groups)
        self.idle = list(self.members)

    def checkout_number(self) -> int:
        return next(self._checkouts)

    def borrow(self, rng: Any) -> Account | None:
        """A member no other visit is using (one browser per account: no refresh-token race)."""
        if not self.idle:
            return None
        index = rng.randrange(len(self.idle))
        self.idle[index], self.idle[-1] = self.idle[-1], self.idle[index]
        return self.idle.pop()

    def give_back(self, account: Account) -> None:
        self.idle.append(account)


def _get(session: FastHttpSession, url: str, headers: dict[str, str]) -> Any:
    response = session.get(url, headers=headers)
    if response.status_code != 200:
        raise SetupFailed(f"GET {url}: {response.status_code} {(response.text or '')[:300]}")
    return response.json()


def discover(
    host: str,
    *,
    admin_email: str = ADMIN_EMAIL,
    password: str = DEMO_PASSWORD,
    members: int = 100,
    products: int = 300,
) -> World:
    """Sign the admin in and read members, products and search terms from the API."""
    session = FastHttpSession(host, request_event=EventHook(), user=None, **SETUP_HTTP)
    admin = Account(admin_email, password)
    response = session.post("/v1/auth/login", json={"email": admin_email, "password": password})
    if response.status_code != 200:
        raise SetupFailed(
            f"the admin {admin_email} cannot log in ({response.status_code}): is the database "
            f"seeded (python -m app seed --preset small)? {(response.text or '')[:300]}"
        )
    admin.take(response.json())
    found: list[Account] = []
    cursor: str | None = None
    while len(found) < members:
        query = "/v1/auth/users?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = _get(session, query, admin.headers)
        found += [
            Account(user["email"], password)
            for user in page["items"]
            if user["email_verified"] and user["role"] == "member"
        ]
        cursor = page["next_cursor"]
        if not cursor:
            break
    catalog: list[Product] = []
    names: Counter[str] = Counter()
    cursor = None
    while len(catalog) < products:
        page = _get(session, "/v1/products?limit=100" + (f"&cursor={cursor}" if cursor else ""), {})
        for item in page["items"]:
            catalog.append(Product(item["id"], item["price_amount"], item["currency"]))
            names.update(_WORD.findall(item["name"].lower()))
        cursor = page["next_cursor"]
        if not cursor:
            break
    if not found or not catalog:
        raise SetupFailed(
            f"found {len(found)} verified members and {len(catalog)} products: seed the "
            "database first (python -m app seed --preset small)"
        )
    terms = [word for word, _ in names.most_common(40)]
    chosen = found[:members]
    _sign_in(host, chosen)
    return World(admin, chosen, catalog[:products], terms)


def _sign_in(host: str, accounts: list[Account], concurrency: int = 2) -> None:
    """Members start with a live session, as returning users' browsers hold one. A seeded
    password is hashed at auth's default cost and rehashed at the server's on the first login:
    that cost is paid here, before the window, not by the first minute of the run."""

    def one(account: Account) -> None:
        session = FastHttpSession(host, request_event=EventHook(), user=None, **SETUP_HTTP)
        body = {"email": account.email, "password": account.password}
        response = session.post("/v1/auth/login", json=body)
        if response.status_code != 200:
            raise SetupFailed(
                f"{account.email} cannot log in ({response.status_code}): "
                f"{(response.text or repr(getattr(response, 'error', '')))[:300]}"
                " (a 429: raise the server's per-address login limits, docs/loadtest.md)"
            )
        account.take(response.json())

    pool = gevent.pool.Pool(concurrency)
    for greenlet in [pool.spawn(one, a) for a in accounts]:
        greenlet.get()
