"""Brute-force limits (held in PostgreSQL, across processes), roles, signup validation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.platform.config import Settings
from app.platform.security import create_access_token
from tests.helpers import max_queries, serving
from tests.modules.auth.conftest import Account, MakeAccount, serve, stop
from tools.pgstack import Stack


async def _fail(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"email": email, "password": "Wrong-Pass-99"})


async def test_sixth_failed_login_gets_429(client: httpx.AsyncClient, make_account) -> None:  # type: ignore[no-untyped-def]
    account: Account = await make_account()
    for _ in range(5):
        assert (await _fail(client, account.email)).status_code == 401
    sixth = await _fail(client, account.email)
    assert sixth.status_code == 429
    assert sixth.headers["content-type"] == "application/problem+json"
    assert 1 <= int(sixth.headers["retry-after"]) <= 900
    # The right password does not get through either while the window lasts.
    right = await client.post(
        "/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert right.status_code == 429


async def test_unknown_email_is_limited_the_same_way(client: httpx.AsyncClient) -> None:
    email = f"ghost-{uuid.uuid4().hex[:8]}@example.com"
    statuses = [(await _fail(client, email)).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


async def test_success_clears_the_account_counter(client: httpx.AsyncClient, make_account) -> None:  # type: ignore[no-untyped-def]
    account: Account = await make_account()
    for _ in range(4):
        await _fail(client, account.email)
    ok = await client.post(
        "/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert ok.status_code == 200
    for _ in range(5):
        assert (await _fail(client, account.email)).status_code == 401


@pytest.fixture
async def ip_limited_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"auth_login_failures_per_ip": 3}))
    peer = (f"203.0.113.{uuid.uuid4().int % 250}", 4000)
    async with serving(app, peer=peer, raise_app_exceptions=True) as c:
        yield c


async def test_per_address_limit_spans_accounts(ip_limited_client: httpx.AsyncClient) -> None:
    emails = [f"spray-{uuid.uuid4().hex[:8]}@example.com" for _ in range(4)]
    statuses = [(await _fail(ip_limited_client, e)).status_code for e in emails]
    assert statuses == [401, 401, 401, 429]


def test_limit_holds_across_two_app_processes(migrated: Stack, tmp_path: Path) -> None:
    # The per-address limit is out of the way: every test shares 127.0.0.1.
    env = {"APP_AUTH_LOGIN_FAILURES_PER_IP": "10000"}
    servers = [serve(migrated, tmp_path / f"s{i}.log", env) for i in range(2)]
    try:
        email = f"two-procs-{uuid.uuid4().hex[:8]}@example.com"
        statuses = []
        for attempt in range(6):
            server = servers[attempt % 2]
            resp = httpx.post(
                server.base_url + "/v1/auth/login",  # type: ignore[attr-defined]
                json={"email": email, "password": "Wrong-Pass-99"},
                timeout=60,
            )
            statuses.append(resp.status_code)
        assert statuses == [401] * 5 + [429]
    finally:
        for server in servers:
            stop(server)


async def test_member_gets_403_on_admin_endpoints(
    client: httpx.AsyncClient,
    settings: Settings,
    make_account: MakeAccount,
) -> None:
    member: Account = await make_account()
    token = create_access_token(settings, member.id, ["member"])
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/auth/users", headers=headers)).status_code == 403
    resp = await client.put(
        f"/v1/auth/users/{member.id}/role", json={"role": "admin"}, headers=headers
    )
    assert resp.status_code == 403
    assert resp.json()["type"] == "/problems/forbidden"


async def test_admin_lists_users_and_changes_roles(
    client: httpx.AsyncClient,
    app: FastAPI,
    make_account: MakeAccount,
) -> None:
    admin: Account = await make_account(role="admin")
    member: Account = await make_account()
    tokens = (
        await client.post("/v1/auth/login", json={"email": admin.email, "password": admin.password})
    ).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        # One query a page, however many users it holds, plus the replica-position checks that
        # read-your-writes makes after this admin's own login wrote (at most one a replica: the
        # first may not have replayed it yet), plus the admin token's freshness check.
        with max_queries(2 + len(app.state.db.replicas)):
            page = (await client.get("/v1/auth/users", params=params, headers=headers)).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert admin.email in seen
    assert member.email in seen
    assert len(seen) == len(set(seen))

    promoted = await client.put(
        f"/v1/auth/users/{member.id}/role", json={"role": "admin"}, headers=headers
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    own = await client.put(
        f"/v1/auth/users/{admin.id}/role", json={"role": "member"}, headers=headers
    )
    assert own.status_code == 409
    missing = await client.put(
        f"/v1/auth/users/{uuid.uuid4()}/role", json={"role": "admin"}, headers=headers
    )
    assert missing.status_code == 404
    bad = await client.put(
        f"/v1/auth/users/{member.id}/role", json={"role": "owner"}, headers=headers
    )
    assert bad.status_code == 422
    bad_cursor = await client.get("/v1/auth/users", params={"cursor": "nope"}, headers=headers)
    assert bad_cursor.status_code == 400


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1A", "at least 10 characters"),
        ("alllowercaseletters", "mix at least two"),
        ("password123", "too easy to guess"),
        ("aaaaaaaaaaaa1", "5 different characters"),
    ],
)
async def test_signup_refuses_weak_passwords(
    client: httpx.AsyncClient, password: str, reason: str
) -> None:
    resp = await client.post(
        "/v1/auth/signup",
        json={"email": f"weak-{uuid.uuid4().hex[:6]}@example.com", "password": password},
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["errors"][0]["field"] == "password"
    assert any(reason in e["msg"] for e in body["errors"])


async def test_signup_refuses_bad_email_and_extra_fields(client: httpx.AsyncClient) -> None:
    assert (
        await client.post("/v1/auth/signup", json={"email": "nope", "password": "Good-Pass-123"})
    ).status_code == 422
    extra = await client.post(
        "/v1/auth/signup",
        json={"email": "a@example.com", "password": "Good-Pass-123", "role": "admin"},
    )
    assert extra.status_code == 422
