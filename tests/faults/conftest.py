"""Fault tests: databases stopped and killed under load, against a real server process.

They run on a primary + replica of their own (started once for the package), never the session's:
stopping a node here must not fail a test elsewhere, and each test restarts what it stopped, even
when it fails.
"""

from __future__ import annotations

import asyncio
import atexit
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.platform.config import Settings
from app.platform.db.migrations import alembic_config
from app.platform.security import create_access_token
from tests.e2e.conftest import Server, start_server, stop_server
from tests.helpers import make_settings, replica_catch_up
from tools.pgstack import Stack, temporary_stack


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[Stack]:
    from alembic import command

    stack = temporary_stack()
    atexit.register(stack.clean)  # also when the session dies before the fixture ends
    stack.start()
    command.upgrade(alembic_config(stack.primary_url), "head")
    replica_catch_up(stack)
    yield stack
    stack.clean()


@pytest.fixture
def stack(fault_stack: Stack) -> Iterator[Stack]:
    """The fault stack, both nodes running again (and the replica streaming) after the test."""
    try:
        yield fault_stack
    finally:
        fault_stack.primary.start()
        fault_stack.replica.start()
        replica_catch_up(fault_stack, timeout=60)


@pytest.fixture
def fault_settings(fault_stack: Stack) -> Settings:
    return make_settings(fault_stack)


def serve(stack: Stack, log: Path, **env: str) -> Server:
    """The app as its own process (``python -m app serve``) on the fault stack."""
    return start_server(
        stack,
        log,
        # Checks every half second, so a test sees the replica's return quickly.
        extra_env={
            "APP_DB_REPLICA_CHECK_INTERVAL_SECONDS": "0.5",
            # Every client of these tests shares one address: the per-address limit is not
            # what they test.
            "APP_AUTH_LOGIN_FAILURES_PER_IP": "1000000",
            # A ceiling for the replica checks, not an expectation: a loaded machine needs room.
            "APP_READINESS_TIMEOUT_SECONDS": "10",
            # Cheap password hashing, as in the in-process tests: a login's CPU is not under test.
            "APP_AUTH_ARGON2_TIME_COST": "1",
            "APP_AUTH_ARGON2_MEMORY_KIB": "1024",
            "APP_AUTH_ARGON2_PARALLELISM": "1",
            **env,
        },
    )


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts servers; every one of them is stopped when the test ends, failed or not."""
    started: list[Server] = []

    def factory(stack: Stack, name: str = "server", **env: str) -> Server:
        server = serve(stack, tmp_path / f"{name}.log", **env)
        started.append(server)
        return server

    yield factory
    for server in started:
        stop_server(server)


def member_token(settings: Settings) -> str:
    return create_access_token(settings, uuid.uuid4(), ["member"])


@dataclass(frozen=True)
class Answer:
    started: float  # time.monotonic() when the request was sent
    name: str
    status: int
    content_type: str
    problem_type: str | None
    retry_after: str | None


@dataclass
class Load:
    """Clients in a loop over a set of requests, every answer recorded (transport errors too)."""

    client: httpx.AsyncClient
    requests: dict[str, Callable[[httpx.AsyncClient], asyncio.Future[httpx.Response]]]
    answers: list[Answer] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _one(self, worker: int) -> None:
        names = list(self.requests)
        i = worker
        while not self._stop.is_set():
            name = names[i % len(names)]
            i += 1
            started = time.monotonic()
            try:
                resp = await self.requests[name](self.client)
            except httpx.TransportError as exc:
                self.transport_errors.append(f"{name}: {exc!r}")
                await asyncio.sleep(0.05)
                continue
            problem = None
            if resp.headers.get("content-type", "").startswith("application/problem+json"):
                problem = resp.json().get("type")
            self.answers.append(
                Answer(
                    started,
                    name,
                    resp.status_code,
                    resp.headers.get("content-type", ""),
                    problem,
                    resp.headers.get("retry-after"),
                )
            )
            await asyncio.sleep(0.01)

    def start(self, workers: int) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._one(w)) for w in range(workers)]

    async def stop(self, tasks: list[asyncio.Task[None]]) -> None:
        self._stop.set()
        await asyncio.gather(*tasks)

    def of(self, name: str) -> list[Answer]:
        return [a for a in self.answers if a.name == name]


async def accepting(stack: Stack, *, primary: bool = True) -> bool:
    """Whether the node accepts a connection and answers a query right now."""
    port = stack.primary_port if primary else stack.replica_port
    try:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=port, user="app", password="app", database="app", timeout=2
        )
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        return bool(await conn.fetchval("SELECT 1"))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    finally:
        await conn.close()


async def first_accepting(stack: Stack, *, primary: bool = True, ceiling: float = 60.0) -> float:
    """Poll until the node accepts connections; the monotonic time it first did."""
    deadline = time.monotonic() + ceiling
    while time.monotonic() < deadline:
        probe = time.monotonic()
        if await accepting(stack, primary=primary):
            return probe
        await asyncio.sleep(0.02)
    raise AssertionError(f"the node did not accept connections within {ceiling}s")
