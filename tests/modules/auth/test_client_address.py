"""Which address the per-address limits count: X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.platform.config import Settings
from app.platform.ratelimit import client_address, parse_networks
from tests.helpers import asgi_client, started
from tests.modules.auth.conftest import serve, stop
from tools.pgstack import Stack

PROXIES = parse_networks(["10.0.0.0/8", "192.168.1.5"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        # An untrusted peer's header is the client's own claim: ignored.
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        # A trusted proxy's: the right-most address no trusted proxy vouches for.
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
        ("10.1.2.3", "6.6.6.6, 198.51.100.1, 192.168.1.5", "198.51.100.1"),
        ("10.1.2.3", "not-an-address", "10.1.2.3"),
        ("10.1.2.3", "10.9.9.9", "10.9.9.9"),
        (None, "198.51.100.1", "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_no_trusted_proxies_by_default() -> None:
    assert Settings(_env_file=None).trusted_proxies == ()
    assert client_address("127.0.0.1", "198.51.100.1", ()) == "127.0.0.1"


def test_trusted_proxies_setting_is_comma_separated_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")
    assert Settings(_env_file=None).trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    monkeypatch.setenv("APP_TRUSTED_PROXIES", "10.0.0.0/8,nonsense")
    with pytest.raises(ValueError, match="nonsense"):
        Settings(_env_file=None)


async def _app(settings: Settings, **update: object) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"auth_login_failures_per_ip": 3, **update}))
    async with started(app):
        yield app


@pytest.fixture
async def untrusting_app(settings: Settings) -> AsyncIterator[FastAPI]:
    async for app in _app(settings):
        yield app


@pytest.fixture
async def proxied_app(settings: Settings) -> AsyncIterator[FastAPI]:
    async for app in _app(settings, trusted_proxies=("10.0.0.0/8",)):
        yield app


def _fresh_address(host: int) -> str:
    """An address no other test counted against (the limits' counters outlive a test)."""
    n = uuid.uuid4().int
    return f"100.{64 + n % 64}.{(n >> 8) % 256}.{host + 1}"


def _client(app: FastAPI, peer: str) -> httpx.AsyncClient:
    return asgi_client(app, peer=(peer, 4000), raise_app_exceptions=True)


async def _spray(client: httpx.AsyncClient, forwarded: list[str]) -> list[int]:
    statuses = []
    for address in forwarded:
        resp = await client.post(
            "/v1/auth/login",
            json={"email": f"spray-{uuid.uuid4().hex[:8]}@example.com", "password": "Wrong-99x"},
            headers={"X-Forwarded-For": address},
        )
        statuses.append(resp.status_code)
    return statuses


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(
    untrusting_app: FastAPI,
) -> None:
    async with _client(untrusting_app, _fresh_address(1)) as client:
        statuses = await _spray(client, [f"198.51.100.{i}" for i in range(4)])
    assert statuses == [401, 401, 401, 429]


async def test_a_trusted_proxys_forwarded_for_is_believed(proxied_app: FastAPI) -> None:
    async with _client(proxied_app, "10.20.30.40") as proxy:
        # Four clients behind the proxy: each has its own budget ...
        assert await _spray(proxy, [_fresh_address(i) for i in range(4)]) == [401] * 4
        # ... and one client is limited by its own address, not the proxy's.
        assert await _spray(proxy, [_fresh_address(9)] * 4) == [401, 401, 401, 429]


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [("", [401, 401, 401, 429]), ("127.0.0.1", [401, 401, 401, 401])],
    ids=["untrusted-peer", "trusted-proxy"],
)
def test_the_server_process_believes_forwarded_for_only_from_trusted_proxies(
    migrated: Stack, tmp_path: Path, trusted: str, expected: list[int]
) -> None:
    env = {"APP_AUTH_LOGIN_FAILURES_PER_IP": "3", "APP_TRUSTED_PROXIES": trusted}
    # Every served test connects from 127.0.0.1: start this one's budget for it from zero.
    migrated.primary.psql(
        "DELETE FROM platform_rate_limit WHERE key = 'login-ip:127.0.0.1'", db="app"
    )
    process = serve(migrated, tmp_path / "server.log", env)
    try:
        base = uuid.uuid4().int % 200
        statuses = [
            httpx.post(
                process.base_url + "/v1/auth/login",  # type: ignore[attr-defined]
                json={"email": f"xff-{uuid.uuid4().hex[:8]}@example.com", "password": "Wrong-99x"},
                headers={"X-Forwarded-For": f"198.18.{base}.{i}"},
                timeout=60,
            ).status_code
            for i in range(4)
        ]
    finally:
        stop(process)
    assert statuses == expected
