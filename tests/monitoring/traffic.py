"""A shop's worth of users against a running server: the traffic the live monitoring test scrapes.

Everything goes through the public API the way clients use it: signups completed with the link
from the verification email (the server's console email backend writes it to the server's log),
logins that succeed and fail, products created by an admin, searches with their analytics events
and clicks, checkouts with the fake provider's test tokens, refunds, a pending payment settled by a
signed provider webhook, password resets. The outbox dispatcher running inside the server delivers
the events these publish to the notifications and analytics listeners.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.modules.payments.providers.signing import SIGNATURE_HEADER, sign
from app.platform.config import Settings
from app.platform.security import create_access_token
from tools.pgstack import Stack

PASSWORD = "Live-Shopper-2024"
# Products whose words the searches below find (and one search that finds nothing).
PRODUCTS = (
    ("Espresso grinder", "Burr grinder for espresso and filter coffee"),
    ("Pour-over kettle", "Gooseneck kettle for filter coffee"),
    ("Ceramic mug", "A mug for coffee or tea"),
)
QUERIES = ("coffee", "grinder", "kettle", "mug", "unobtainium")
# Checkouts the baseline drives, all successful: over CheckoutSuccessRateLow's traffic guard (20 in
# 15 minutes) on their own, so "silent while above 95%" is tested with the guard met.
BASELINE_CHECKOUTS = 40
_LINK_TOKEN = re.compile(r"token=([A-Za-z0-9_\-]+)")


@dataclass
class Shopper:
    email: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def with_key(self) -> dict[str, str]:
        return {**self.headers, "Idempotency-Key": str(uuid.uuid4())}


@dataclass
class Shop:
    """The API calls of the traffic, each checking the answer a client would rely on."""

    client: httpx.Client
    settings: Settings
    server_log: Path
    stack: Stack
    db: str
    product_ids: list[str] = field(default_factory=list)
    # What was driven, by kind: the tests compare it with what Prometheus recorded.
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.counts[kind] += n

    # --- catalog (admin) --------------------------------------------------------------------

    def create_products(self) -> None:
        admin = create_access_token(self.settings, uuid.uuid4(), ["member", "admin"])
        for name, description in PRODUCTS:
            resp = self.client.post(
                "/v1/products",
                headers={"Authorization": f"Bearer {admin}"},
                json={
                    "name": name,
                    "description": description,
                    "price_amount": 1250,
                    "currency": "EUR",
                },
            )
            assert resp.status_code == 201, resp.text
            self.product_ids.append(resp.json()["id"])
        self._wait_for_replica()

    def _wait_for_replica(self) -> None:
        # Catalog reads are served by the replica: let it replay the products before searching.
        lsn = self.stack.primary.psql("SELECT pg_current_wal_insert_lsn()")
        query = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
        _until(lambda: self.stack.replica.psql(query) == "t", "the replica to catch up")

    # --- accounts ---------------------------------------------------------------------------

    def signup(self) -> Shopper:
        """Sign up, open the verification email, verify, log in: a completed signup."""
        email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
        resp = self.client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
        assert resp.status_code == 202, resp.text
        self._count("signup_started")
        token = _until(lambda: self._link_in_email(email, "verify-email"), f"the email to {email}")
        resp = self.client.post("/v1/auth/verify-email", json={"token": token})
        assert resp.status_code == 200, resp.text
        self._count("signup_verified")
        return Shopper(email, self.login(email))

    def signup_abandoned(self) -> None:
        """A signup whose email is never opened."""
        email = f"drifter-{uuid.uuid4().hex[:12]}@example.com"
        resp = self.client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
        assert resp.status_code == 202, resp.text
        self._count("signup_started")

    def _link_in_email(self, address: str, path: str) -> str | None:
        """The token of the newest link to ``path`` in an email the console backend logged."""
        found = None
        for line in self.server_log.read_text(errors="replace").splitlines():
            if '"email_console"' not in line or address not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                text = record.get("text", "")
                if record.get("to") == address and f"/{path}?" in text:
                    match = _LINK_TOKEN.search(text)
                    found = match.group(1) if match else found
        return found

    def login(self, email: str) -> str:
        resp = self.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        self._count("login_success")
        return str(resp.json()["access_token"])

    def login_wrong_password(self, email: str) -> None:
        resp = self.client.post(
            "/v1/auth/login", json={"email": email, "password": "Not-The-Password-1"}
        )
        assert resp.status_code == 401, resp.text
        self._count("login_failure")

    def password_reset(self, email: str) -> None:
        resp = self.client.post("/v1/auth/password-reset/request", json={"email": email})
        assert resp.status_code == 202, resp.text

    def browse(self, shopper: Shopper) -> None:
        for path in ("/v1/auth/me", "/v1/notifications", "/v1/products", "/v1/orders"):
            resp = self.client.get(path, headers=shopper.headers)
            assert resp.status_code == 200, f"{path}: {resp.text}"

    # --- search and analytics ---------------------------------------------------------------

    def search(self, shopper: Shopper, query: str, click: bool) -> None:
        """A search, reported as an analytics event, and a click on its first hit if asked."""
        resp = self.client.get("/v1/products/search", params={"q": query})
        assert resp.status_code == 200, resp.text
        result = resp.json()
        events: list[dict[str, Any]] = [
            {
                "type": "search",
                "search_id": result["search_id"],
                "query": query,
                "result_count": len(result["items"]),
            }
        ]
        if click and result["items"]:
            events.append(
                {
                    "type": "search_click",
                    "search_id": result["search_id"],
                    "product_id": result["items"][0]["id"],
                    "position": 1,
                }
            )
        resp = self.client.post(
            "/v1/analytics/events", headers=shopper.headers, json={"events": events}
        )
        assert resp.status_code == 202, resp.text
        self._count("search")
        self._count("search_click", len(events) - 1)

    # --- payments ---------------------------------------------------------------------------

    def checkout(self, shopper: Shopper, payment_token: str) -> httpx.Response:
        body = {
            "items": [{"product_id": pid, "quantity": 1} for pid in self.product_ids[:2]],
            "payment_token": payment_token,
        }
        resp = self.client.post("/v1/checkout", headers=shopper.with_key(), json=body)
        expected = {
            "tok_success": 201,
            "tok_pending": 202,
            "tok_declined": 402,
            "tok_insufficient_funds": 402,
            "tok_provider_error": 502,
        }[payment_token]
        assert resp.status_code == expected, f"{payment_token}: {resp.status_code} {resp.text}"
        self._count(f"checkout:{payment_token}")
        return resp

    def refund(self, shopper: Shopper, order_id: str) -> None:
        resp = self.client.post(
            f"/v1/orders/{order_id}/refund", headers=shopper.with_key(), json={"amount": 100}
        )
        assert resp.status_code == 201, resp.text
        self._count("refund")

    def pending_checkout_settled_by_webhook(self, shopper: Shopper) -> None:
        """A pending charge, then the provider's signed ``charge.succeeded`` settles it."""
        order_id = self.checkout(shopper, "tok_pending").json()["id"]
        # The payment's id and charge id, as the provider knows them (uuid.UUID() checks the id).
        where = f"order_id = '{uuid.UUID(order_id)}'"
        sql = f"SELECT id || ',' || provider_charge_id FROM payments_payment WHERE {where}"  # noqa: S608
        row = self.stack.primary.psql(sql, db=self.db)
        payment_id, charge_id = row.split(",")
        event = {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "charge.succeeded",
            "data": {"charge_id": charge_id, "reference": payment_id},
        }
        body = json.dumps(event).encode()
        secret = self.settings.payments_webhook_secret.get_secret_value()
        headers = {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}
        resp = self.client.post("/v1/payments/webhooks/provider", content=body, headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.json()["outcome"] == "applied", resp.text
        self._count("webhook_applied")


def baseline(shop: Shop, shoppers: list[Shopper], scraped: Callable[[list[str]], bool]) -> None:
    """Every flow once more, and checkouts that clear the alert's traffic guard, once Prometheus
    has scraped the server (its counters only tell what happens after its first look).

    Flows the loop does not repeat run twice, the second once Prometheus has scraped the first:
    a series born at its first increment (a listener's first delivery, a route's first 502) has
    no earlier sample, so rate() only sees the ones after.
    """
    shop.signup_abandoned()
    shop.login_wrong_password(shoppers[0].email)
    shop.pending_checkout_settled_by_webhook(shoppers[0])
    for n in range(BASELINE_CHECKOUTS):
        order = shop.checkout(shoppers[n % len(shoppers)], "tok_success").json()
        if n % 8 == 0:
            shop.refund(shoppers[n % len(shoppers)], order["id"])
    # Provider failures: 502s for the 5xx ratios and the availability SLO, PaymentFailed events.
    # Two in 42 decided checkouts keep the success ratio at 95.2%, above the alert's 95%.
    shop.checkout(shoppers[1], "tok_provider_error")
    shop.password_reset(shoppers[1].email)
    for query in ("coffee", "mug", "unobtainium"):
        shop.search(shoppers[1], query, click=query != "unobtainium")
    born = [
        'http_requests_total{route="/v1/checkout", status="502"}',
        'event_deliveries_total{listener="notifications.payment_failed_notice"}',
        'event_deliveries_total{listener="notifications.send_password_reset_email"}',
    ]
    _until(lambda: scraped(born), f"Prometheus to scrape {born}", timeout=20)
    shop.checkout(shoppers[2], "tok_provider_error")
    shop.password_reset(shoppers[2].email)


def _until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    # Never less than a minute: a poll only waits that long when the machine is that busy.
    deadline = time.monotonic() + max(timeout, 60.0)
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Traffic:
    """A background shopper loop for as long as the live module runs.

    ``checkouts`` can be switched off so a test controls every checkout outcome it counts on.
    Errors stop the loop and are raised again by ``check()``, so broken traffic fails the tests
    instead of silently leaving the panels empty.
    """

    def __init__(self, shop: Shop, shoppers: list[Shopper]) -> None:
        self.shop = shop
        self.shoppers = shoppers
        self.checkouts = threading.Event()
        self.checkouts.set()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.rounds = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self._round()
                self.rounds += 1
                # A shopper's pace, not a load test: the machine runs Prometheus and the tests too.
                self.stop.wait(0.25)
        except BaseException as exc:  # handed to the test thread by check()
            self.error = exc

    def _round(self) -> None:
        shop, n = self.shop, self.rounds
        shopper = self.shoppers[n % len(self.shoppers)]
        for path in ("/healthz", "/readyz", f"/no-such-page-{uuid.uuid4().hex[:6]}"):
            shop.client.get(path)
        shop.browse(shopper)
        # Two searches in three are clicked; the one that finds nothing never is.
        query = QUERIES[n % len(QUERIES)]
        shop.search(shopper, query, click=n % 3 != 2)
        if n % 4 == 0:
            # A mistyped address: the per-account limit (5 in 15 minutes) never locks anyone out.
            shop.login_wrong_password(f"typo-{uuid.uuid4().hex[:8]}@example.com")
        if n % 10 == 5:
            shop.signup()
        if self.checkouts.is_set():
            order = shop.checkout(shopper, "tok_success").json()
            if n % 5 == 0:
                shop.refund(shopper, order["id"])

    def pause_checkouts(self) -> None:
        """No checkout from the loop after this returns (the round running now may do one)."""
        self.checkouts.clear()
        current = self.rounds
        _until(lambda: self.rounds > current or self.error, "the traffic's round to end")
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the traffic stopped: {self.error!r}") from self.error
        assert self.thread.is_alive(), "the traffic thread is not running"

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
