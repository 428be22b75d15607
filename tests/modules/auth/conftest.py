"""Fixtures for auth: accounts created through the service, as signup would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from fastapi import FastAPI

from app.modules.auth.models import User
from app.modules.auth.passwords import Passwords
from tests.helpers import replica_caught_up
from tools.pgstack import Stack, free_port

PASSWORD = "Correct-Horse-42"
ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Account:
    id: uuid.UUID
    email: str
    password: str = PASSWORD


class MakeAccount(Protocol):
    """The ``make_account`` fixture: a user inserted directly, as signup would leave it."""

    async def __call__(
        self, *, verified: bool = ..., role: str = ..., password: str = ...
    ) -> Account: ...


@pytest.fixture
def make_account(app: FastAPI) -> MakeAccount:
    """Insert a user directly (verified unless told otherwise), with a real argon2 hash."""

    async def make(
        *, verified: bool = True, role: str = "member", password: str = PASSWORD
    ) -> Account:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        passwords = Passwords(app.state.settings)
        async with app.state.db.session() as session:
            user = User(
                id=uuid.uuid4(),
                email=email,
                password_hash=await passwords.hash(password),
                role=role,
                email_verified_at=datetime.now(UTC) if verified else None,
            )
            session.add(user)
            await session.commit()
        await replica_caught_up(app.state.db)
        return Account(user.id, email, password)

    return make


def serve(stack: Stack, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m app serve`` on a free port, waited for under a generous ceiling."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=ROOT,
        env={
            **os.environ,
            "APP_ENV": "test",
            "APP_DATABASE_URL": stack.primary_url,
            "APP_REPLICA_DATABASE_URL": stack.replica_url,
            **env,
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    process.base_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(process.base_url + "/healthz", timeout=5).status_code == 200:  # type: ignore[attr-defined]
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"server did not come up:\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
