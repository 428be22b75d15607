"""Logins under a burst: the limit holds under concurrency, hashing is bounded, no 5xx.

The burst runs with the production argon2 parameters (the suite's cheap ones would end it
before it overlaps anything) against the in-process app, with a poller asking for /healthz
concurrently.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.modules.auth.passwords import Passwords
from app.platform.config import Settings
from tests.helpers import asgi_client, started
from tests.modules.auth.conftest import Account, MakeAccount

WRONG = "Wrong-Pass-99"
PRODUCTION_ARGON2 = {
    name: Settings.model_fields[name].default
    for name in ("auth_argon2_time_cost", "auth_argon2_memory_kib", "auth_argon2_parallelism")
}


@pytest.fixture
async def burst_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update=PRODUCTION_ARGON2))
    async with started(app):
        yield app


def client_from(app: FastAPI, address: str) -> httpx.AsyncClient:
    return asgi_client(app, peer=(address, 4000))


async def wrong_login(client: httpx.AsyncClient, email: str) -> int:
    resp = await client.post("/v1/auth/login", json={"email": email, "password": WRONG})
    return resp.status_code


async def test_30_parallel_wrong_logins_let_at_most_the_limit_through(
    burst_app: FastAPI,
    make_account: MakeAccount,
) -> None:
    account: Account = await make_account()
    limit = burst_app.state.settings.auth_login_failures_per_account_and_ip
    latencies: list[float] = []
    done, warm = asyncio.Event(), asyncio.Event()

    async def poll(client: httpx.AsyncClient) -> None:
        # The app's first request pays one-off costs that are not the burst's doing.
        assert (await client.get("/healthz")).status_code == 200
        warm.set()
        while not done.is_set():
            start = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.01)

    async with (
        client_from(burst_app, "198.51.100.7") as attacker,
        client_from(burst_app, "198.51.100.8") as poller,
    ):
        polling = asyncio.create_task(poll(poller))
        await warm.wait()
        statuses = Counter(
            await asyncio.gather(*(wrong_login(attacker, account.email) for _ in range(30)))
        )
        done.set()
        await polling

    assert statuses[401] <= limit, statuses
    assert statuses[401] + statuses[429] == 30, statuses
    assert not [s for s in statuses if s >= 500]
    assert latencies, "the poller never ran during the burst"
    assert max(latencies) < 0.2, f"/healthz took {max(latencies) * 1000:.0f} ms during the burst"


async def test_the_owner_logs_in_from_another_address_during_an_attack(
    burst_app: FastAPI,
    make_account: MakeAccount,
) -> None:
    account: Account = await make_account()
    async with client_from(burst_app, "203.0.113.66") as attacker:
        statuses = [await wrong_login(attacker, account.email) for _ in range(12)]
    assert statuses == [401] * 5 + [429] * 7
    async with client_from(burst_app, "198.51.100.20") as owner:
        resp = await owner.post(
            "/v1/auth/login", json={"email": account.email, "password": account.password}
        )
    assert resp.status_code == 200, resp.text


@pytest.fixture
async def spread_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings.model_copy(
            update={
                "auth_login_failures_per_account_and_ip": 2,
                "auth_login_failures_per_account": 5,
            }
        )
    )
    async with started(app):
        yield app


async def test_the_per_account_limit_caps_guesses_from_many_addresses(spread_app: FastAPI) -> None:
    email = f"target-{uuid.uuid4().hex[:8]}@example.com"
    seen: list[list[int]] = []
    for i in range(4):
        async with client_from(spread_app, f"192.0.2.{10 + i}") as client:
            seen.append([await wrong_login(client, email) for _ in range(3)])
    # Two guesses per address; the refused third costs the account nothing; five in all.
    assert seen == [[401, 401, 429], [401, 401, 429], [401, 429, 429], [429, 429, 429]]


class _BlockingHasher:
    """argon2's hasher, except that a verify waits until the test lets it go on."""

    def __init__(self, real: Any, entered: threading.Event, release: threading.Event) -> None:
        self.real, self.entered, self.release = real, entered, release

    def verify(self, stored: str, password: str) -> bool:
        self.entered.set()
        self.release.wait(timeout=60)
        return bool(self.real.verify(stored, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def blocking_passwords(
    app: FastAPI, entered: threading.Event, release: threading.Event
) -> Passwords:
    passwords = Passwords(app.state.settings)
    passwords.hasher = _BlockingHasher(passwords.hasher, entered, release)  # type: ignore[assignment]
    return passwords


async def test_a_full_hashing_queue_answers_503_at_once_and_costs_no_attempt(
    settings: Settings,
    make_account: MakeAccount,
) -> None:
    app = create_app(settings.model_copy(update={"auth_hash_concurrency": 1, "auth_hash_queue": 0}))
    account: Account = await make_account()
    entered, release = threading.Event(), threading.Event()
    async with started(app):
        app.state.auth_passwords = blocking_passwords(app, entered, release)
        async with (
            client_from(app, "198.51.100.30") as first,
            client_from(app, "198.51.100.31") as second,
        ):
            # The first login's hash occupies the only slot, and no one may wait for it.
            running = asyncio.create_task(wrong_login(first, account.email))
            assert await asyncio.to_thread(entered.wait, 60)
            resp = await second.post(
                "/v1/auth/login", json={"email": account.email, "password": WRONG}
            )
            release.set()
            assert await running == 401
            assert resp.status_code == 503
            assert resp.headers["content-type"] == "application/problem+json"
            assert int(resp.headers["retry-after"]) >= 1
            assert resp.json()["type"] == "/problems/busy"
            # The refused attempt was never tried, so it was not counted.
            statuses = [await wrong_login(second, account.email) for _ in range(6)]
    assert statuses == [401] * 5 + [429]


async def test_no_pooled_connection_is_held_while_a_password_hash_runs(
    app: FastAPI,
    make_account: MakeAccount,
) -> None:
    account: Account = await make_account()
    entered, release = threading.Event(), threading.Event()
    app.state.auth_passwords = blocking_passwords(app, entered, release)
    pool = app.state.db.primary.pool
    async with client_from(app, "198.51.100.40") as client:
        login = asyncio.create_task(
            client.post("/v1/auth/login", json={"email": account.email, "password": WRONG})
        )
        assert await asyncio.to_thread(entered.wait, 60)
        held = pool.checkedout()
        release.set()
        resp = await login
    assert resp.status_code == 401
    assert held == 0, f"{held} pooled connection(s) checked out while the hash ran"
