"""Tokens follow the account: role change, logout, password reset and deletion revoke at once.

Admin routes and routes that move money (checkout, refunds) check the token against the account
on every call; reads stay stateless until the access token expires (docs/auth.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.bootstrap import use_payments_provider
from app.modules.auth.models import PURPOSE_PASSWORD_RESET, OneTimeToken
from app.modules.auth.service._common import hash_token
from app.modules.payments.providers import FakePaymentProvider
from tests.modules.auth.conftest import Account, MakeAccount

NEW_PASSWORD = "Fresh-Start-77"


async def login(
    client: httpx.AsyncClient, account: Account, password: str | None = None
) -> dict[str, Any]:
    resp = await client.post(
        "/v1/auth/login", json={"email": account.email, "password": password or account.password}
    )
    assert resp.status_code == 200, resp.text
    tokens: dict[str, Any] = resp.json()
    return tokens


def bearer(tokens: dict[str, Any], **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}", **extra}


def keyed(tokens: dict[str, Any]) -> dict[str, str]:
    return bearer(tokens, **{"Idempotency-Key": str(uuid.uuid4())})


async def create_product(client: httpx.AsyncClient, admin: dict[str, Any]) -> httpx.Response:
    body = {"name": f"lamp {uuid.uuid4().hex[:6]}", "price_amount": 1200, "currency": "EUR"}
    return await client.post("/v1/products", json=body, headers=bearer(admin))


async def checkout(
    client: httpx.AsyncClient, buyer: dict[str, Any], product_id: str
) -> httpx.Response:
    body = {"items": [{"product_id": product_id, "quantity": 1}], "payment_token": "tok_success"}
    return await client.post("/v1/checkout", json=body, headers=keyed(buyer))


async def refund(
    client: httpx.AsyncClient, tokens: dict[str, Any], order_id: str
) -> httpx.Response:
    return await client.post(f"/v1/orders/{order_id}/refund", json={}, headers=keyed(tokens))


def assert_revoked(resp: httpx.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["reason"] == "revoked"


async def paid_order(
    app: FastAPI, client: httpx.AsyncClient, make_account: MakeAccount
) -> tuple[Account, dict[str, Any], str, str]:
    """A buyer signed in, with a paid order; and a product id to buy more of."""
    use_payments_provider(
        app, FakePaymentProvider(str(app.state.settings.database_url), latency_ms=0)
    )
    admin = await login(client, await make_account(role="admin"))
    product = await create_product(client, admin)
    assert product.status_code == 201, product.text
    buyer = await make_account()
    tokens = await login(client, buyer)
    order = await checkout(client, tokens, product.json()["id"])
    assert order.status_code == 201, order.text
    return buyer, tokens, order.json()["id"], product.json()["id"]


async def test_a_demoted_admin_cannot_create_a_product_at_once(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
) -> None:
    demoted, other = await make_account(role="admin"), await make_account(role="admin")
    tokens, other_tokens = await login(client, demoted), await login(client, other)
    assert (await create_product(client, tokens)).status_code == 201

    resp = await client.put(
        f"/v1/auth/users/{demoted.id}/role", json={"role": "member"}, headers=bearer(other_tokens)
    )
    assert resp.status_code == 200

    assert_revoked(await create_product(client, tokens))
    assert_revoked(await client.get("/v1/auth/users", headers=bearer(tokens)))
    # Reads stay stateless until the access token expires: the bound docs/auth.md states.
    assert (await client.get("/v1/auth/me", headers=bearer(tokens))).status_code == 200
    # The sign-in survives; refreshing it gives a member's token, which cannot do admin work.
    renewed = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200
    assert (await create_product(client, renewed.json())).status_code == 403


async def test_after_logout_the_old_access_token_cannot_check_out_or_refund(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
) -> None:
    buyer, tokens, order_id, product_id = await paid_order(app, client, make_account)
    other_device = await login(client, buyer)

    out = await client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204

    assert_revoked(await checkout(client, tokens, product_id))
    assert_revoked(await refund(client, tokens, order_id))
    # Logging out is per sign-in: the buyer's other sign-in still moves money.
    assert (await refund(client, other_device, order_id)).status_code == 201


async def test_after_a_password_reset_the_old_access_token_cannot_check_out_or_refund(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
) -> None:
    buyer, tokens, order_id, product_id = await paid_order(app, client, make_account)
    raw = f"reset-{uuid.uuid4().hex}"
    async with app.state.db.session() as session:
        session.add(
            OneTimeToken(
                user_id=buyer.id,
                purpose=PURPOSE_PASSWORD_RESET,
                token_hash=hash_token(raw),
                expires_at=datetime.now(UTC) + timedelta(minutes=30),
            )
        )
        await session.commit()

    confirm = await client.post(
        "/v1/auth/password-reset/confirm", json={"token": raw, "new_password": NEW_PASSWORD}
    )
    assert confirm.status_code == 204, confirm.text

    assert_revoked(await checkout(client, tokens, product_id))
    assert_revoked(await refund(client, tokens, order_id))
    fresh = await login(client, buyer, NEW_PASSWORD)
    assert (await refund(client, fresh, order_id)).status_code == 201


async def test_after_deletion_the_old_access_token_cannot_check_out_or_refund(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
) -> None:
    buyer, tokens, order_id, product_id = await paid_order(app, client, make_account)

    deleted = await client.delete("/v1/auth/me", headers=bearer(tokens))
    assert deleted.status_code == 204, deleted.text

    assert_revoked(await checkout(client, tokens, product_id))
    assert_revoked(await refund(client, tokens, order_id))
    assert_revoked(await client.delete("/v1/auth/me", headers=bearer(tokens)))
    gone = await client.post(
        "/v1/auth/login", json={"email": buyer.email, "password": buyer.password}
    )
    assert gone.status_code == 401
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    async with app.state.db.session() as session:
        users = await session.scalar(
            text("SELECT count(*) FROM auth_user WHERE id = :id"), {"id": buyer.id}
        )
        events = await session.scalar(
            text(
                "SELECT count(*) FROM platform_outbox_event WHERE name = 'auth.account_deleted' "
                "AND payload->>'user_id' = :id"
            ),
            {"id": str(buyer.id)},
        )
    assert users == 0
    assert events == 1
