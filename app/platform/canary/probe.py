"""The canary's journey: write a price as an admin, read it back as several users, compare.

Each check, through the public HTTP API only (the canary knows nothing of the caches, replicas or
faults behind it):

1. the canary admin logs in (once; again when a token is refused) and finds the canary product
   by name, creating it the first time;
2. it changes the product's price and keeps the payload the API answered: what was written;
3. after ``settle`` seconds (other processes hear of the change, the replica replays it), every
   canary user reads the product page, and one anonymous search looks the product up;
4. a read is stale when it is older than what was written (an earlier ``updated_at``, or the same
   one with another payload); a stale read is looked at once more after ``settle`` before it
   counts, so a replica a few milliseconds behind is not a mismatch. A newer payload (another
   writer came after) is consistent.

A read that answers 5xx, or a login refused, makes the check an error: it raises, and the
worker's job runner logs and counts it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.platform.canary import metrics
from app.platform.config import Settings
from app.platform.observability.logging import get_logger

log = get_logger("app.canary")

# Reads in flight at once: enough to read a few dozen users within a second, little for the API.
CONCURRENCY = 8
_COMPARED = ("id", "name", "description", "price_amount", "currency", "active", "updated_at")


class CanaryError(RuntimeError):
    """The journey could not finish (a refused login, a 5xx, a product that cannot be made)."""


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    base_url: str
    admin_email: str
    user_emails: tuple[str, ...]
    password: str
    product_name: str = "Canary probe"
    settle_seconds: float = 1.0
    timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CanaryConfig | None:
        """The canary's configuration, or None where it is not switched on."""
        if not settings.canary_base_url:
            return None
        if not (settings.canary_admin_email and settings.canary_user_emails):
            raise ValueError(
                "APP_CANARY_BASE_URL is set: APP_CANARY_ADMIN_EMAIL and APP_CANARY_USER_EMAILS "
                "must name the canary's accounts"
            )
        password = settings.canary_password
        return cls(
            base_url=settings.canary_base_url.rstrip("/"),
            admin_email=settings.canary_admin_email,
            user_emails=settings.canary_user_emails,
            password=password.get_secret_value() if password is not None else "",
            product_name=settings.canary_product_name,
            settle_seconds=settings.canary_settle_seconds,
        )


@dataclass(slots=True)
class RouteResult:
    readers: int = 0
    stale: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CheckResult:
    written: dict[str, Any]
    routes: dict[str, RouteResult]

    @property
    def consistent(self) -> bool:
        return not any(r.stale for r in self.routes.values())


def is_stale(read: dict[str, Any], written: dict[str, Any]) -> bool:
    """Older than what was written: an earlier change, or the same change with other fields."""
    if str(read.get("updated_at")) != str(written["updated_at"]):
        # ISO 8601 in UTC from the same serializer: the strings order like the instants.
        return str(read.get("updated_at")) < str(written["updated_at"])
    return any(read.get(k) != written.get(k) for k in _COMPARED)


class Canary:
    """One canary: its tokens and its product are kept from one check to the next."""

    def __init__(self, config: CanaryConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self._transport = transport
        self._tokens: dict[str, str] = {}
        self._product_id: str | None = None
        self._price = 1000 + uuid.uuid4().int % 1000

    async def check(self) -> CheckResult:
        """One journey; counts it in the metrics, and raises ``CanaryError`` when it failed."""
        try:
            async with httpx.AsyncClient(
                base_url=self.config.base_url,
                timeout=self.config.timeout_seconds,
                transport=self._transport,
            ) as client:
                result = await self._journey(client)
        except (httpx.HTTPError, CanaryError) as exc:
            metrics.checks_total.labels(outcome="error").inc()
            raise CanaryError(f"canary check failed: {exc}") from exc
        _record(result)
        return result

    async def _journey(self, client: httpx.AsyncClient) -> CheckResult:
        product_id = await self._ensure_product(client)
        self._price = 1000 + (self._price - 999) % 9000
        resp = await self._as(
            client, self.config.admin_email, "PATCH", f"/v1/products/{product_id}",
            json={"price_amount": self._price},
        )  # fmt: skip
        written: dict[str, Any] = resp.json()
        await asyncio.sleep(self.config.settle_seconds)
        page = await self._read_pages(client, product_id, written)
        search = await self._read_search(client, product_id, written)
        return CheckResult(written, {metrics.PRODUCT_ROUTE: page, metrics.SEARCH_ROUTE: search})

    async def _read_pages(
        self, client: httpx.AsyncClient, product_id: str, written: dict[str, Any]
    ) -> RouteResult:
        # Logins one at a time: password hashing is bounded per process, a burst gets 503s.
        for email in self.config.user_emails:
            if email not in self._tokens:
                await self._login(client, email)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def read(email: str) -> dict[str, Any]:
            async with gate:
                resp = await self._as(client, email, "GET", f"/v1/products/{product_id}")
                data: dict[str, Any] = resp.json()
                return data

        return await self._compare(list(self.config.user_emails), read, written)

    async def _read_search(
        self, client: httpx.AsyncClient, product_id: str, written: dict[str, Any]
    ) -> RouteResult:
        async def read(_: str) -> dict[str, Any]:
            resp = _ok(
                await client.get(
                    "/v1/products/search", params={"q": self.config.product_name, "limit": 50}
                )
            )
            hits = [h for h in resp.json()["items"] if h["id"] == product_id]
            return hits[0] if hits else {"updated_at": ""}

        return await self._compare(["anonymous"], read, written)

    async def _compare(
        self,
        readers: list[str],
        read: Callable[[str], Awaitable[dict[str, Any]]],
        written: dict[str, Any],
    ) -> RouteResult:
        first = await asyncio.gather(*(read(r) for r in readers))
        suspects = [r for r, got in zip(readers, first, strict=True) if is_stale(got, written)]
        if suspects:
            await asyncio.sleep(self.config.settle_seconds)
            again = await asyncio.gather(*(read(r) for r in suspects))
            suspects = [r for r, got in zip(suspects, again, strict=True) if is_stale(got, written)]
        return RouteResult(readers=len(readers), stale=suspects)

    async def _ensure_product(self, client: httpx.AsyncClient) -> str:
        if self._product_id is not None:
            return self._product_id
        name = self.config.product_name
        resp = await self._as(
            client, self.config.admin_email, "GET", "/v1/products/search",
            params={"q": name, "limit": 50},
        )  # fmt: skip
        found = sorted(
            (h for h in resp.json()["items"] if h["name"] == name), key=lambda h: h["created_at"]
        )
        if found:
            self._product_id = str(found[0]["id"])
        else:
            body = {
                "name": name,
                "description": "Synthetic product of the correctness canary; not for sale.",
                "price_amount": self._price,
                "currency": "EUR",
            }
            created = await self._as(
                client, self.config.admin_email, "POST", "/v1/products", json=body
            )
            self._product_id = str(created.json()["id"])
            log.info("canary_product_created", product_id=self._product_id)
        return self._product_id

    async def _as(
        self, client: httpx.AsyncClient, email: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response:
        """A request as ``email``, logging in first, and once more if the token is refused."""
        for attempt in (1, 2):
            token = self._tokens.get(email) or await self._login(client, email)
            headers = {"Authorization": f"Bearer {token}"}
            resp = await client.request(method, url, headers=headers, **kwargs)
            if resp.status_code == 401 and attempt == 1:
                self._tokens.pop(email, None)
                continue
            return _ok(resp)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _login(self, client: httpx.AsyncClient, email: str) -> str:
        resp = await client.post(
            "/v1/auth/login", json={"email": email, "password": self.config.password}
        )
        if resp.status_code != 200:
            raise CanaryError(f"login of {email} refused: {resp.status_code}")
        token: str = resp.json()["access_token"]
        self._tokens[email] = token
        return token


def _ok(resp: httpx.Response) -> httpx.Response:
    if resp.status_code >= 300:
        raise CanaryError(f"{resp.request.method} {resp.request.url.path}: {resp.status_code}")
    return resp


def _record(result: CheckResult) -> None:
    for route, seen in result.routes.items():
        metrics.reads_total.labels(route=route).inc(seen.readers)
        metrics.mismatches_total.labels(route=route).inc(len(seen.stale))
        metrics.readers.labels(route=route).set(seen.readers)
        metrics.stale_readers.labels(route=route).set(len(seen.stale))
        if seen.stale:
            log.warning(
                "canary_mismatch",
                route=route,
                stale_readers=len(seen.stale),
                readers=seen.readers,
                written_price=result.written.get("price_amount"),
            )
    metrics.checks_total.labels(outcome="ok" if result.consistent else "mismatch").inc()
    metrics.last_success.set(time.time())


def job_runner(settings: Settings) -> Callable[[], Awaitable[object]] | None:
    """The worker's periodic canary run, or None where no canary is configured."""
    config = CanaryConfig.from_settings(settings)
    if config is None:
        return None
    return Canary(config).check
