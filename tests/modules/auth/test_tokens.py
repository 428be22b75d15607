"""Login, refresh rotation with reuse detection, logout, me."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.modules.auth.conftest import Account, MakeAccount

PROBLEM = "application/problem+json"


async def login(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    resp = await client.post(
        "/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert resp.status_code == 200, resp.text
    tokens: dict[str, Any] = resp.json()
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_login_and_me(client: httpx.AsyncClient, make_account) -> None:  # type: ignore[no-untyped-def]
    account = await make_account()
    tokens = await login(client, account)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 300
    me = await client.get("/v1/auth/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["email"] == account.email
    assert me.json()["role"] == "member"
    assert me.json()["email_verified"] is True


async def test_login_accepts_email_in_any_case(client: httpx.AsyncClient, make_account) -> None:  # type: ignore[no-untyped-def]
    account = await make_account()
    resp = await client.post(
        "/v1/auth/login", json={"email": account.email.upper(), "password": account.password}
    )
    assert resp.status_code == 200


async def test_unverified_account_cannot_log_in(client: httpx.AsyncClient, make_account) -> None:  # type: ignore[no-untyped-def]
    account = await make_account(verified=False)
    resp = await client.post(
        "/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert resp.status_code == 403
    assert resp.json()["type"] == "/problems/email-not-verified"


async def test_failed_login_is_the_same_for_known_and_unknown_emails(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
) -> None:
    account = await make_account()
    known = await client.post(
        "/v1/auth/login", json={"email": account.email, "password": "Wrong-Pass-99"}
    )
    unknown = await client.post(
        "/v1/auth/login", json={"email": "nobody-" + account.email, "password": "Wrong-Pass-99"}
    )
    assert known.status_code == unknown.status_code == 401
    assert known.headers["content-type"] == unknown.headers["content-type"] == PROBLEM
    assert _without_request_id(known.json()) == _without_request_id(unknown.json())


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient,
    make_account: MakeAccount,
) -> None:
    account = await make_account()
    first = await login(client, account)
    second = (
        await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = (
        await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    ).json()
    assert "refresh_token" in third

    # The first token, already rotated, is presented again: the whole family dies.
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["reason"] == "reused"
    newest = await client.post("/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert newest.status_code == 401

    # Another sign-in (another family) is untouched.
    other = await login(client, account)
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    ).status_code == 200


async def test_logout_revokes_the_family(client: httpx.AsyncClient, make_account) -> None:  # type: ignore[no-untyped-def]
    account = await make_account()
    tokens = await login(client, account)
    rotated = (
        await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    assert (
        await client.post("/v1/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    ).status_code == 204
    refused = await client.post(
        "/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert refused.status_code == 401
    # Logging out twice is harmless.
    assert (
        await client.post("/v1/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    ).status_code == 204


async def test_refresh_tokens_are_stored_hashed(
    client: httpx.AsyncClient,
    app: FastAPI,
    make_account: MakeAccount,
) -> None:
    account = await make_account()
    tokens = await login(client, account)
    async with app.state.db.session() as session:
        stored = (
            (
                await session.execute(
                    text("SELECT token_hash FROM auth_refresh_token WHERE user_id = :u"),
                    {"u": account.id},
                )
            )
            .scalars()
            .all()
        )
    assert stored
    assert tokens["refresh_token"] not in stored
    assert all(len(h) == 64 for h in stored)


async def test_garbage_refresh_token(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": "x" * 40})
    assert resp.status_code == 401
    assert resp.json()["reason"] == "invalid"


async def test_rehash_on_login_when_parameters_change(
    client: httpx.AsyncClient,
    app: FastAPI,
    make_account: MakeAccount,
) -> None:
    account = await make_account()

    async def stored_hash() -> str:
        async with app.state.db.session() as session:
            stored: str = (
                await session.execute(
                    text("SELECT password_hash FROM auth_user WHERE id = :u"), {"u": account.id}
                )
            ).scalar_one()
        return stored

    before = await stored_hash()
    assert "m=1024,t=1,p=1" in before
    app.state.settings = app.state.settings.model_copy(update={"auth_argon2_time_cost": 2})
    app.state.auth_passwords = None
    await login(client, account)
    after = await stored_hash()
    assert "m=1024,t=2,p=1" in after
    await login(client, account)  # the new hash verifies
