"""A password-reset request does the same work whether or not an account uses the address."""

from __future__ import annotations

import re
import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.platform.observability.sql import count_queries
from tests.helpers import wait_for
from tests.modules.auth.conftest import Account, MakeAccount


def _shape(sql: str) -> str:
    # Bound parameters differ between the two requests; the statements must not.
    return re.sub(r"\s+", " ", sql).strip()


async def _request(client: httpx.AsyncClient, email: str) -> list[str]:
    with count_queries() as ran:
        resp = await client.post("/v1/auth/password-reset/request", json={"email": email})
    assert resp.status_code == 202
    return [_shape(s) for s in ran.statements]


async def test_known_and_unknown_addresses_run_the_same_statements(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_account: MakeAccount,
) -> None:
    account: Account = await make_account()
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    # Warm both paths once (first-use work such as prepared statements is not the point).
    await _request(client, f"warm-{uuid.uuid4().hex[:8]}@example.com")

    known_statements = await _request(client, account.email)
    unknown_statements = await _request(client, unknown)

    assert known_statements == unknown_statements
    assert not any("auth_user" in s or "auth_one_time_token" in s for s in known_statements)

    # The link is still minted for the known address, off the request path.
    async def minted() -> int:
        async with app.state.db.session() as session:
            count = await session.scalar(
                text(
                    "SELECT count(*) FROM auth_one_time_token "
                    "WHERE user_id = :id AND purpose = 'password_reset'"
                ),
                {"id": account.id},
            )
        return int(count or 0)

    assert await wait_for(minted, timeout=30) == 1
