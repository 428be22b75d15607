"""A burst of parallel wrong logins on one account: guesses let through, 5xx, /healthz latency.

    python -m bench.login_burst [--base-url URL] [--burst N] [--rounds N] [--port N]

Without --base-url it starts `python -m app serve` itself (development settings, the production
argon2 parameters) against the databases in APP_DATABASE_URL / APP_REPLICA_DATABASE_URL. Each
round creates a fresh verified account, then sends --burst wrong passwords for it at once while a
poller asks for /healthz every 20 ms until the burst is answered. A guess "let through" is a
login the server checked against the password (401); the limit should refuse the rest (429).
Prints, per round and pooled: the answers by status, guesses let through, 5xx, and the /healthz
p50/p99/max during the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.platform.config import get_settings

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Correct-Horse-42"  # noqa: S105 - the benchmark account's
TIMEOUT = 120.0  # seconds a client waits for any answer (0 in the figures: none came)


async def _make_account() -> str:
    from argon2 import PasswordHasher

    settings = get_settings()
    hasher = PasswordHasher(
        time_cost=settings.auth_argon2_time_cost,
        memory_cost=settings.auth_argon2_memory_kib,
        parallelism=settings.auth_argon2_parallelism,
    )
    email = f"burst-{uuid.uuid4().hex[:10]}@example.com"
    engine = create_async_engine(str(settings.database_url))
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO auth_user (id, email, password_hash, role, email_verified_at) "
                "VALUES (:id, :email, :hash, 'member', :now)"
            ),
            {
                "id": uuid.uuid4(),
                "email": email,
                "hash": hasher.hash(PASSWORD),
                "now": datetime.now(UTC),
            },
        )
    await engine.dispose()
    return email


async def _counted(email: str) -> int:
    """Wrong guesses the server has counted against the account so far."""
    engine = create_async_engine(str(get_settings().database_url))
    async with engine.connect() as conn:
        hits = await conn.scalar(
            text("SELECT coalesce(sum(hits), 0) FROM platform_rate_limit WHERE key = :k"),
            {"k": f"login-account:{email}"},
        )
    await engine.dispose()
    return int(hits or 0)


async def _round(base_url: str, burst: int) -> tuple[Counter[int], list[float]]:
    email = await _make_account()
    latencies: list[float] = []
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=burst + 2)
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, limits=limits) as client:

        async def poll() -> None:
            async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as poller:
                while not done.is_set():
                    start = time.perf_counter()
                    # A timeout counts as the time waited: the figure is a floor then.
                    with contextlib.suppress(httpx.TimeoutException):
                        await poller.get("/healthz")
                    latencies.append(time.perf_counter() - start)
                    await asyncio.sleep(0.02)

        async def guess() -> int:
            body = {"email": email, "password": "Wrong-Pass-99"}
            try:
                return (await client.post("/v1/auth/login", json=body)).status_code
            except httpx.TimeoutException:
                return 0  # no answer within the client's timeout

        poller = asyncio.create_task(poll())
        await asyncio.sleep(0.1)
        statuses = Counter(await asyncio.gather(*(guess() for _ in range(burst))))
        done.set()
        await poller
    print(f"  the server counted {await _counted(email)} wrong guesses on the account")
    return statuses, latencies


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _report(label: str, statuses: Counter[int], latencies: list[float]) -> None:
    fivexx = sum(n for s, n in statuses.items() if s >= 500)
    print(
        f"{label}: answers {dict(sorted(statuses.items()))}, let through {statuses[401]}, "
        f"5xx {fivexx}; /healthz n={len(latencies)} p50 {statistics.median(latencies) * 1000:.1f} "
        f"ms, p99 {_p(latencies, 0.99):.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


def _start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "APP_ENV": os.environ.get("APP_ENV", "development")}
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url")
    parser.add_argument("--port", type=int, default=57020)
    parser.add_argument("--burst", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    process = None if args.base_url else _start_server(args.port)
    base_url = args.base_url or f"http://127.0.0.1:{args.port}"
    try:
        total: Counter[int] = Counter()
        every: list[float] = []
        for i in range(args.rounds):
            statuses, latencies = asyncio.run(_round(base_url, args.burst))
            _report(f"round {i + 1}", statuses, latencies)
            total += statuses
            every += latencies
        _report("pooled", total, every)
        print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
