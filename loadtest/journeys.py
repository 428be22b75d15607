"""The user journeys of the mixed load, and the share of arrivals each gets.

Weights are per arrival (a visit), as a consumer SaaS shop sees them: most visits read (browse,
search), a minority sign in, a tenth buy, a few sign up, SDKs flush analytics batches, an admin
reads reports now and then. Payment outcomes come from the fake provider's test tokens
(docs/payments.md): one checkout in 25 is declined (``tok_declined`` and
``tok_insufficient_funds`` in turn), a deterministic 4% so that a short run is not judged on the
luck of a random draw. Provider errors (502) are left out: they are 5xx, which the availability
SLO counts as the server's failure.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from loadtest.visit import Unexpected, Visit
from loadtest.world import MISSES, Account, World

SIGNUP_PASSWORD = "Load-Test-Password-1"  # noqa: S105 - accounts the load test creates
DECLINE_EVERY = 25
CLICK_SHARE = 0.4  # of searches with results (the seed has ~38%)
REFUND_SHARE = 0.1  # of paid orders
FAILED_LOGIN_SHARE = 0.01  # logins that first mistype the password
NEW_DEVICE_SHARE = 0.1  # member visits that sign in afresh (a new browser) despite a session
MAILBOX_WAIT_SECONDS = 30.0
_PRODUCT = "/v1/products/{product_id}"
_LINK_TOKEN = re.compile(r"token=([A-Za-z0-9_\-]+)")


def _product_page(v: Visit, world: World, step: str = "product") -> str:
    product = world.products[min(int(v.rng.paretovariate(1.2)) - 1, len(world.products) - 1)]
    v.call("GET", f"/v1/products/{product.id}", route=_PRODUCT, step=step)
    return product.id


def browse(v: Visit, world: World) -> None:
    """Anonymous: the catalog, then one to three product pages."""
    v.call("GET", "/v1/products", route="/v1/products", step="catalog", params={"limit": 20})
    for _ in range(v.rng.randint(1, 3)):
        _product_page(v, world)


def search(v: Visit, world: World) -> None:
    """Anonymous search, reported to analytics; a share clicks its first result."""
    device = f"device-{uuid.uuid4().hex[:16]}"
    term = v.rng.choice(world.terms) if v.rng.random() > 0.05 else v.rng.choice(MISSES)
    result = v.call(
        "GET", "/v1/products/search", route="/v1/products/search", step="search", params={"q": term}
    ).json()
    events: list[dict[str, object]] = [
        {
            "type": "search",
            "search_id": result["search_id"],
            "query": term,
            "result_count": len(result["items"]),
        }
    ]
    clicked = result["items"] and v.rng.random() < CLICK_SHARE
    v.call(
        "POST",
        "/v1/analytics/events",
        route="/v1/analytics/events",
        step="search event",
        expect=(202,),
        json={"anonymous_id": device, "events": events},
        think=not clicked,
    )
    if clicked:
        hit = result["items"][0]
        v.call("GET", f"/v1/products/{hit['id']}", route=_PRODUCT, step="click")
        click = {
            "type": "search_click",
            "search_id": result["search_id"],
            "product_id": hit["id"],
            "position": 1,
        }
        v.call(
            "POST",
            "/v1/analytics/events",
            route="/v1/analytics/events",
            step="click event",
            expect=(202,),
            json={"anonymous_id": device, "events": [click]},
        )


def analytics_batch(v: Visit, world: World) -> None:
    """A client SDK flushing its queue: page views and custom events in one batch."""
    paths = ("/", "/pricing", "/products", "/account", "/help")
    events: list[dict[str, object]] = [
        {"type": "page_view", "path": v.rng.choice(paths)} for _ in range(v.rng.randint(3, 15))
    ]
    events.append({"type": "custom", "name": "ui.button_clicked", "properties": {"id": "cta"}})
    v.call(
        "POST",
        "/v1/analytics/events",
        route="/v1/analytics/events",
        step="batch",
        expect=(202,),
        json={"anonymous_id": f"sdk-{uuid.uuid4().hex[:16]}", "events": events},
    )


def login(v: Visit, account: Account) -> None:
    if v.rng.random() < FAILED_LOGIN_SHARE:
        wrong = {"email": account.email, "password": "Mistyped-Password-9"}
        v.call(
            "POST",
            "/v1/auth/login",
            route="/v1/auth/login",
            step="login typo",
            expect=(401,),
            json=wrong,
        )
    body = {"email": account.email, "password": account.password}
    account.take(
        v.call("POST", "/v1/auth/login", route="/v1/auth/login", step="login", json=body).json()
    )


def refresh(v: Visit, account: Account) -> None:
    response = v.call(
        "POST",
        "/v1/auth/refresh",
        route="/v1/auth/refresh",
        step="refresh",
        expect=(200, 401),
        json={"refresh_token": account.refresh},
    )
    if response.status_code == 401:  # the family expired or was revoked: sign in again
        account.refresh = ""
        login(v, account)
    else:
        account.take(response.json())


def signed_in(v: Visit, account: Account) -> None:
    """Reuse the access token while it lives, else spend the refresh token, else log in; a share
    of visits come from a new device and log in whatever they hold."""
    if v.rng.random() < NEW_DEVICE_SHARE:
        login(v, account)
    elif account.signed_in():
        return
    if account.refresh:
        refresh(v, account)
    else:
        login(v, account)


def inbox(v: Visit, account: Account) -> None:
    page = v.call(
        "GET",
        "/v1/notifications",
        route="/v1/notifications",
        step="inbox",
        params={"limit": 20},
        headers=account.headers,
    ).json()
    unread = [n for n in page["items"] if n.get("read_at") is None]
    if unread:
        v.call(
            "POST",
            f"/v1/notifications/{unread[0]['id']}/read",
            route="/v1/notifications/{notification_id}/read",
            step="read notification",
            headers=account.headers,
        )
    if len(unread) > 3:
        v.call(
            "POST",
            "/v1/notifications/read-all",
            route="/v1/notifications/read-all",
            step="read all",
            headers=account.headers,
        )


def member(v: Visit, world: World, account: Account) -> None:
    """A returning member: who am I, the inbox, order history, the catalog."""
    signed_in(v, account)
    v.call("GET", "/v1/auth/me", route="/v1/auth/me", step="me", headers=account.headers)
    inbox(v, account)
    v.call(
        "GET",
        "/v1/orders",
        route="/v1/orders",
        step="order history",
        params={"limit": 10},
        headers=account.headers,
    )
    v.call("GET", "/v1/products", route="/v1/products", step="catalog", params={"limit": 20})


def token_refresh(v: Visit, world: World, account: Account) -> None:
    """A member back after the access token expired: refresh, then the inbox."""
    if account.refresh:
        refresh(v, account)
    else:
        login(v, account)
    v.call("GET", "/v1/auth/me", route="/v1/auth/me", step="me", headers=account.headers)
    inbox(v, account)


def _payment_token(world: World) -> str:
    n = world.checkout_number()
    if n % DECLINE_EVERY != DECLINE_EVERY // 2:
        return "tok_success"
    return "tok_declined" if (n // DECLINE_EVERY) % 2 == 0 else "tok_insufficient_funds"


def buyer(v: Visit, world: World, account: Account) -> None:
    """Browse, check out, look at the order; a share asks for a partial refund."""
    signed_in(v, account)
    currency = v.rng.choice(sorted(world.by_currency))
    products = world.by_currency[currency]
    cart = v.rng.sample(products, k=min(len(products), v.rng.randint(1, 3)))
    for product in cart:
        v.call("GET", f"/v1/products/{product.id}", route=_PRODUCT, step="product")
    token = _payment_token(world)
    body = {
        "items": [{"product_id": p.id, "quantity": 1} for p in cart],
        "payment_token": token,
    }
    key = {**account.headers, "Idempotency-Key": str(uuid.uuid4())}
    charged = token == "tok_success"  # noqa: S105 - a test card of the fake provider
    expect = (201,) if charged else (402,)
    order = v.call(
        "POST",
        "/v1/checkout",
        route="/v1/checkout",
        step=f"checkout {token}",
        expect=expect,
        json=body,
        headers=key,
    ).json()
    v.call(
        "GET",
        "/v1/orders",
        route="/v1/orders",
        step="order history",
        params={"limit": 10},
        headers=account.headers,
    )
    if not charged:
        return
    order_id = order["id"]
    v.call(
        "GET",
        f"/v1/orders/{order_id}",
        route="/v1/orders/{order_id}",
        step="order",
        headers=account.headers,
    )
    if v.rng.random() < REFUND_SHARE:
        amount = max(1, min(100, int(order["total_amount"]) // 2))
        key = {**account.headers, "Idempotency-Key": str(uuid.uuid4())}
        v.call(
            "POST",
            f"/v1/orders/{order_id}/refund",
            route="/v1/orders/{order_id}/refund",
            step="refund",
            expect=(201,),
            json={"amount": amount},
            headers=key,
        )


def _verification_token(v: Visit, email: str) -> str:
    """The token of the verification link the app emailed, read from its mail capture."""
    deadline = v.next_at + MAILBOX_WAIT_SECONDS
    while True:
        mails = v.call(
            "GET",
            "/dev/mailbox",
            route="/dev/mailbox",
            step="open email",
            params={"to": email},
            think=False,
        ).json()
        for mail in mails["items"]:
            found = _LINK_TOKEN.search(mail["text"])
            if mail["template"] == "verify_email" and found:
                return found.group(1)
        if v.next_at > deadline:
            raise Unexpected(f"no verification email to {email} in {MAILBOX_WAIT_SECONDS}s")
        v.think(scale=0.5)


def signup(v: Visit, world: World) -> None:
    """Sign up, open the email, verify, log in, look around; the account joins the members."""
    email = f"lt-{uuid.uuid4().hex[:16]}@example.com"
    body = {"email": email, "password": SIGNUP_PASSWORD}
    v.call(
        "POST", "/v1/auth/signup", route="/v1/auth/signup", step="signup", expect=(202,), json=body
    )
    token = _verification_token(v, email)
    v.call(
        "POST",
        "/v1/auth/verify-email",
        route="/v1/auth/verify-email",
        step="verify email",
        json={"token": token},
    )
    account = Account(email, SIGNUP_PASSWORD)
    login(v, account)
    v.call("GET", "/v1/auth/me", route="/v1/auth/me", step="me", headers=account.headers)
    world.give_back(account)


def admin_reports(v: Visit, world: World) -> None:
    """The admin's morning: the funnel, top search terms, most clicked products, the users."""
    admin = world.admin
    with world.admin_lock:  # one refresh of the shared admin session at a time
        signed_in(v, admin)
    end = datetime.now(UTC).replace(microsecond=0)
    window = {"from": (end - timedelta(days=7)).isoformat(), "to": end.isoformat()}
    reports = (
        ("/v1/analytics/reports/funnel", "funnel", {**window, "interval": "day"}),
        ("/v1/analytics/reports/search-terms", "search terms", {**window, "limit": 10}),
        ("/v1/analytics/reports/clicked-products", "clicked products", {**window, "limit": 10}),
    )
    for path, step, params in reports:
        v.call("GET", path, route=path, step=step, params=params, headers=admin.headers)
    v.call(
        "GET",
        "/v1/auth/users",
        route="/v1/auth/users",
        step="users",
        params={"limit": 20},
        headers=admin.headers,
    )


Journey = Callable[[Visit, World], None]
MemberJourney = Callable[[Visit, World, Account], None]

# name -> (weight per 100 arrivals, journey, whether it needs a member of its own)
MIX: dict[str, tuple[int, Journey | MemberJourney, bool]] = {
    "browse": (30, browse, False),
    "search": (25, search, False),
    "member": (15, member, True),
    "buyer": (10, buyer, True),
    "refresh": (8, token_refresh, True),
    "analytics": (7, analytics_batch, False),
    "signup": (4, signup, False),
    "admin": (1, admin_reports, False),
}
