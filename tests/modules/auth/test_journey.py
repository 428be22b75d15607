"""The whole account journey through HTTP, with the emails the outbox delivers."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.main import create_app
from app.modules.auth import metrics
from app.modules.notifications.senders import MEMORY_SENDER, Email
from app.platform.config import Settings
from tests.helpers import asgi_client, make_settings, started, wait_for
from tools.pgstack import Stack

PASSWORD = "Journey-Pass-2024"


@pytest.fixture(scope="module")
def journey_settings(migrated: Stack) -> Settings:
    return make_settings(
        migrated,
        email_backend="memory",
        events_poll_interval_seconds=0.05,
        events_backoff_base_seconds=0.05,
    )


@pytest.fixture
async def journey_app(journey_settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(journey_settings)
    async with started(app):
        yield app


@pytest.fixture
async def api(journey_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(journey_app, raise_app_exceptions=True) as c:
        yield c


def new_email() -> str:
    return f"journey-{uuid.uuid4().hex[:10]}@example.com"


async def email_to(address: str, subject: str) -> Email:
    async def arrived() -> Email | None:
        return next(
            (m for m in MEMORY_SENDER.sent if m.to == address and m.subject == subject), None
        )

    return await wait_for(arrived, timeout=10)


def link_token(mail: Email) -> str:
    match = re.search(r"token=([A-Za-z0-9_\-]+)", mail.text)
    assert match, mail.text
    return match.group(1)


def counter(name: str, **labels: str) -> float:
    metric = {"stage": metrics.SIGNUPS, "outcome": metrics.LOGINS}[next(iter(labels))]
    return float(metric.labels(**labels)._value.get())


async def test_signup_verify_login_me_refresh_logout(api: httpx.AsyncClient) -> None:
    email = new_email()
    started, verified = counter("s", stage="started"), counter("s", stage="verified")

    signup = await api.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 202
    assert counter("s", stage="started") == started + 1

    mail = await email_to(email, "Confirm your email address")
    assert "/verify-email?token=" in mail.text
    assert mail.html is not None
    assert "Confirm my address" in mail.html
    token = link_token(mail)

    early = await api.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert early.status_code == 403

    assert (await api.post("/v1/auth/verify-email", json={"token": token})).status_code == 200
    assert counter("s", stage="verified") == verified + 1
    again = await api.post("/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400
    assert again.json()["type"] == "/problems/invalid-token"

    tokens = (await api.post("/v1/auth/login", json={"email": email, "password": PASSWORD})).json()
    me = await api.get("/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["email_verified"] is True

    rotated = await api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    refresh = rotated.json()["refresh_token"]
    assert (await api.post("/v1/auth/logout", json={"refresh_token": refresh})).status_code == 204
    refused = await api.post("/v1/auth/refresh", json={"refresh_token": refresh})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"


async def test_signup_with_a_registered_address_looks_the_same(api: httpx.AsyncClient) -> None:
    email = new_email()
    first = await api.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    second = await api.post("/v1/auth/signup", json={"email": email.upper(), "password": PASSWORD})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    await email_to(email, "Confirm your email address")


async def _verified_account(api: httpx.AsyncClient) -> str:
    email = new_email()
    await api.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    token = link_token(await email_to(email, "Confirm your email address"))
    assert (await api.post("/v1/auth/verify-email", json={"token": token})).status_code == 200
    return email


async def test_password_reset_is_single_use_and_revokes_refresh_tokens(
    api: httpx.AsyncClient,
) -> None:
    email = await _verified_account(api)
    session = (await api.post("/v1/auth/login", json={"email": email, "password": PASSWORD})).json()

    assert (
        await api.post("/v1/auth/password-reset/request", json={"email": email})
    ).status_code == 202
    reset = link_token(await email_to(email, "Reset your password"))
    new_password = "Brand-New-Pass-77"
    confirm = await api.post(
        "/v1/auth/password-reset/confirm", json={"token": reset, "new_password": new_password}
    )
    assert confirm.status_code == 204

    # Single use.
    twice = await api.post(
        "/v1/auth/password-reset/confirm", json={"token": reset, "new_password": "Other-Pass-88x"}
    )
    assert twice.status_code == 400
    # Existing sessions are over.
    refused = await api.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refused.status_code == 401
    # Old password out, new password in.
    old = await api.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    new = await api.post("/v1/auth/login", json={"email": email, "password": new_password})
    assert new.status_code == 200


async def test_reset_token_expires(api: httpx.AsyncClient, journey_app: FastAPI) -> None:
    email = await _verified_account(api)
    await api.post("/v1/auth/password-reset/request", json={"email": email})
    reset = link_token(await email_to(email, "Reset your password"))
    async with journey_app.state.db.session() as session:
        await session.execute(
            text(
                "UPDATE auth_one_time_token SET expires_at = :past "
                "WHERE purpose = 'password_reset' "
                "AND user_id = (SELECT id FROM auth_user WHERE email = :e)"
            ),
            {"past": datetime.now(UTC) - timedelta(seconds=1), "e": email},
        )
        await session.commit()
    resp = await api.post(
        "/v1/auth/password-reset/confirm",
        json={"token": reset, "new_password": "Brand-New-Pass-77"},
    )
    assert resp.status_code == 400
    assert resp.json()["type"] == "/problems/invalid-token"


async def test_newer_reset_link_retires_the_older(api: httpx.AsyncClient) -> None:
    email = await _verified_account(api)
    await api.post("/v1/auth/password-reset/request", json={"email": email})
    first = link_token(await email_to(email, "Reset your password"))
    MEMORY_SENDER.sent[:] = [m for m in MEMORY_SENDER.sent if m.to != email]
    await api.post("/v1/auth/password-reset/request", json={"email": email})
    second = link_token(await email_to(email, "Reset your password"))
    assert first != second
    old = await api.post(
        "/v1/auth/password-reset/confirm",
        json={"token": first, "new_password": "Brand-New-Pass-77"},
    )
    assert old.status_code == 400
    new = await api.post(
        "/v1/auth/password-reset/confirm",
        json={"token": second, "new_password": "Brand-New-Pass-77"},
    )
    assert new.status_code == 204


async def test_reset_request_looks_the_same_for_unknown_addresses(api: httpx.AsyncClient) -> None:
    email = await _verified_account(api)
    known = await api.post("/v1/auth/password-reset/request", json={"email": email})
    unknown = await api.post("/v1/auth/password-reset/request", json={"email": "nobody-" + email})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()


async def test_reset_requests_are_limited_per_account(api: httpx.AsyncClient) -> None:
    email = new_email()
    statuses = [
        (await api.post("/v1/auth/password-reset/request", json={"email": email})).status_code
        for _ in range(4)
    ]
    assert statuses == [202, 202, 202, 429]
