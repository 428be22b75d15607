"""Access tokens: only a well-signed, unexpired HS256 token for our audience makes a Principal."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import APIRouter

from app.main import create_app
from app.platform.config import Settings
from app.platform.security import ROLE_ADMIN, ROLE_MEMBER, create_access_token
from app.platform.web.security import AdminPrincipal, CurrentPrincipal
from tests.helpers import serving

USER = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    router = APIRouter(prefix="/_test")

    @router.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, object]:
        return {"user_id": str(principal.user_id), "roles": sorted(principal.roles)}

    @router.get("/admin")
    async def admin(principal: AdminPrincipal) -> dict[str, str]:
        return {"ok": str(principal.user_id)}

    app = create_app(settings)
    app.include_router(router)
    async with serving(app) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_token_gives_principal(client: httpx.AsyncClient, settings: Settings) -> None:
    resp = await client.get(
        "/_test/me", headers=bearer(create_access_token(settings, USER, [ROLE_MEMBER]))
    )
    assert resp.status_code == 200
    assert resp.json() == {"user_id": str(USER), "roles": [ROLE_MEMBER]}


def _claims(settings: Settings, **override: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(USER),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "roles": [ROLE_ADMIN],
    }
    claims.update(override)
    return claims


def _bad_tokens(settings: Settings) -> dict[str, str]:
    key = settings.secret_key.get_secret_value()
    past = datetime.now(UTC) - timedelta(hours=1)
    return {
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims(settings)) + ".",
        "another key": jwt.encode(_claims(settings), "x" * 40, algorithm="HS256"),
        "other algorithm": jwt.encode(_claims(settings), key, algorithm="HS512"),
        "expired": create_access_token(settings, USER, [ROLE_ADMIN], now=past),
        "wrong audience": jwt.encode(_claims(settings, aud="someone-else"), key, algorithm="HS256"),
        "wrong issuer": jwt.encode(_claims(settings, iss="evil"), key, algorithm="HS256"),
        "subject not a uuid": jwt.encode(_claims(settings, sub="root"), key, algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in _claims(settings).items() if k != "exp"}, key),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "another key",
        "other algorithm",
        "expired",
        "wrong audience",
        "wrong issuer",
        "subject not a uuid",
        "no exp",
        "garbage",
    ],
)
async def test_bad_tokens_are_401_problems(
    client: httpx.AsyncClient, settings: Settings, case: str
) -> None:
    resp = await client.get("/_test/admin", headers=bearer(_bad_tokens(settings)[case]))
    assert resp.status_code == 401, case
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"] == "Bearer"
    body = resp.json()
    assert body["type"] == "/problems/unauthorized"
    assert body["reason"] == ("expired" if case == "expired" else "invalid")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc", "Bearer "])
async def test_malformed_authorization_header(client: httpx.AsyncClient, header: str) -> None:
    resp = await client.get("/_test/me", headers={"Authorization": header})
    assert resp.status_code == 401
    assert resp.json()["type"] == "/problems/unauthorized"


async def test_missing_token(client: httpx.AsyncClient) -> None:
    resp = await client.get("/_test/me")
    assert resp.status_code == 401
    assert resp.json()["reason"] == "missing"


async def test_member_on_admin_endpoint_is_403(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    member = create_access_token(settings, USER, [ROLE_MEMBER])
    resp = await client.get("/_test/admin", headers=bearer(member))
    assert resp.status_code == 403
    assert resp.json()["type"] == "/problems/forbidden"
    admin = create_access_token(settings, USER, [ROLE_MEMBER, ROLE_ADMIN])
    assert (await client.get("/_test/admin", headers=bearer(admin))).status_code == 200
