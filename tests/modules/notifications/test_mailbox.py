"""The development mail capture: a client reads the link the app emailed, never in production."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.platform.config import Settings
from tests.helpers import deployed_settings, make_settings, serving, wait_for
from tools.pgstack import Stack

PASSWORD = "Mailbox-Pass-2024"


@pytest.fixture
async def api(migrated: Stack) -> AsyncIterator[httpx.AsyncClient]:
    # The console backend, as `make run`: the capture reads the app's records, not a sender.
    settings = make_settings(migrated, email_backend="console", events_poll_interval_seconds=0.05)
    async with serving(create_app(settings)) as client:
        yield client


async def _mailbox(api: httpx.AsyncClient, address: str) -> list[dict[str, Any]]:
    resp = await api.get("/dev/mailbox", params={"to": address})
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def test_the_verification_link_is_read_back_and_verifies(api: httpx.AsyncClient) -> None:
    email = f"mailbox-{uuid.uuid4().hex[:10]}@example.com"
    assert await _mailbox(api, email) == []
    signup = await api.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 202

    async def arrived() -> list[dict[str, Any]]:
        return await _mailbox(api, email)

    (mail,) = await wait_for(arrived, timeout=30)
    assert mail["to"] == email
    assert mail["template"] == "verify_email"
    token = re.search(r"token=([A-Za-z0-9_\-]+)", mail["text"])
    assert token, mail["text"]
    verified = await api.post("/v1/auth/verify-email", json={"token": token.group(1)})
    assert verified.status_code == 200, verified.text
    login = await api.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    # Another address sees nothing of it.
    assert await _mailbox(api, f"other-{uuid.uuid4().hex[:8]}@example.com") == []


async def test_the_capture_is_not_in_the_api_document(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/dev")]


@pytest.mark.parametrize("env", ["staging", "production"])
async def test_the_capture_does_not_exist_outside_development(env: str, migrated: Stack) -> None:
    settings: Settings = deployed_settings(migrated, env)
    async with serving(create_app(settings)) as client:
        resp = await client.get("/dev/mailbox", params={"to": "someone@example.com"})
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
