"""Payments events reach the buyer: a receipt email and inbox entry, failure and refund notices.

Through the whole stack: signup (notifications learns the address from auth's event), checkout
(payments publishes through the outbox), and the dispatcher delivering to notifications.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.modules.notifications.senders import MEMORY_SENDER, Email
from app.platform.config import Settings
from app.platform.money import format_money
from app.platform.security import create_access_token
from tests.helpers import make_settings, serving, wait_for
from tools.pgstack import Stack

PASSWORD = "Buyer-Pass-2024"


@pytest.fixture(scope="module")
def shop_settings(migrated: Stack) -> Settings:
    return make_settings(
        migrated,
        email_backend="memory",
        events_poll_interval_seconds=0.05,
        events_backoff_base_seconds=0.05,
        payments_fake_provider_latency_ms=0,
    )


@pytest.fixture
async def shop(shop_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(shop_settings)
    async with serving(app, raise_app_exceptions=True) as client:
        yield client


async def _mail(address: str, subject_prefix: str) -> Email:
    async def arrived() -> Email | None:
        return next(
            (
                m
                for m in MEMORY_SENDER.sent
                if m.to == address and m.subject.startswith(subject_prefix)
            ),
            None,
        )

    return await wait_for(arrived, timeout=10)


async def _buyer(shop: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    email = f"buyer-{uuid.uuid4().hex[:10]}@example.com"
    assert (
        await shop.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    ).status_code == 202
    mail = await _mail(email, "Confirm your email")
    token = re.search(r"token=([A-Za-z0-9_\-]+)", mail.text)
    assert token
    assert (
        await shop.post("/v1/auth/verify-email", json={"token": token.group(1)})
    ).status_code == 200
    login = await shop.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    return email, {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _product(shop: httpx.AsyncClient, settings: Settings, price: int) -> str:
    admin = create_access_token(settings, uuid.uuid4(), ["member", "admin"])
    resp = await shop.post(
        "/v1/products",
        json={
            "name": "Desk lamp",
            "description": "Warm light",
            "price_amount": price,
            "currency": "EUR",
        },
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def _checkout(
    shop: httpx.AsyncClient, headers: dict[str, str], product: str, token: str
) -> httpx.Response:
    return await shop.post(
        "/v1/checkout",
        json={"items": [{"product_id": product, "quantity": 2}], "payment_token": token},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )


async def _inbox(
    shop: httpx.AsyncClient, headers: dict[str, str], template: str
) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]]:
        items = (await shop.get("/v1/notifications", headers=headers)).json()["items"]
        return [n for n in items if n["template"] == template]

    return await wait_for(found, timeout=10)


async def test_paid_order_sends_a_receipt_and_an_inbox_entry(
    shop: httpx.AsyncClient, shop_settings: Settings
) -> None:
    email, headers = await _buyer(shop)
    product = await _product(shop, shop_settings, price=1250)
    order = await _checkout(shop, headers, product, "tok_success")
    assert order.status_code == 201, order.text
    order_ref = order.json()["id"].split("-")[0].upper()

    receipt = await _mail(email, "Your receipt")
    assert order_ref in receipt.subject
    assert "25.00 EUR" in receipt.text
    assert receipt.html is not None
    assert "25.00 EUR" in receipt.html
    [entry] = await _inbox(shop, headers, "order_receipt")
    assert order_ref in entry["subject"]


async def test_declined_payment_leaves_an_inbox_notice_and_no_email(
    shop: httpx.AsyncClient, shop_settings: Settings
) -> None:
    email, headers = await _buyer(shop)
    product = await _product(shop, shop_settings, price=990)
    declined = await _checkout(shop, headers, product, "tok_declined")
    assert declined.status_code == 402
    [notice] = await _inbox(shop, headers, "payment_failed")
    assert "did not go through" in notice["subject"]
    assert not [m for m in MEMORY_SENDER.sent if m.to == email and "payment" in m.subject.lower()]


async def test_refund_leaves_an_inbox_notice(
    shop: httpx.AsyncClient, shop_settings: Settings
) -> None:
    _, headers = await _buyer(shop)
    product = await _product(shop, shop_settings, price=500)
    order = (await _checkout(shop, headers, product, "tok_success")).json()
    refund = await shop.post(
        f"/v1/orders/{order['id']}/refund",
        json={"amount": 300},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert refund.status_code == 201, refund.text
    [notice] = await _inbox(shop, headers, "refund_issued")
    assert "3.00 EUR" in notice["subject"]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (2500, "EUR", "25.00 EUR"),
        (5, "usd", "0.05 USD"),
        (123456789, "GBP", "1,234,567.89 GBP"),
        (500, "JPY", "500 JPY"),
        # Minor units from the currency, not a fixed two decimals.
        (1500, "KWD", "1.500 KWD"),
        (1, "BHD", "0.001 BHD"),
    ],
)
def test_money_is_formatted_by_currency(amount: int, currency: str, text: str) -> None:
    assert format_money(amount, currency) == text
