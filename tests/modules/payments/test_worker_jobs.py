"""The worker's payments jobs: expired keys purged in bounded batches; the worker runs the jobs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from app.modules.payments import service
from app.modules.payments.models import IdempotencyKey, Order
from app.modules.payments.schemas import CheckoutRequest
from app.platform.config import Settings
from tests.e2e.conftest import ROOT
from tests.helpers import wait_for
from tests.modules.payments.conftest import (
    Caller,
    Died,
    Interrupting,
    ProductFactory,
    reconciliation,
)
from tools.pgstack import Stack, free_port


async def _add_keys(app: FastAPI, count: int, *, expired: bool) -> uuid.UUID:
    user = uuid.uuid4()
    async with app.state.db.session.begin() as session:
        await session.execute(
            text(
                "INSERT INTO payments_idempotency_key (user_id, key, fingerprint, state, "
                "expires_at) SELECT :u, 'k' || n, 'f', 'completed', "
                "now() + make_interval(secs => :offset) FROM generate_series(1, :n) AS n"
            ),
            {"u": user, "n": count, "offset": -60 if expired else 86_400},
        )
    return user


async def _expired(app: FastAPI) -> int:
    async with app.state.db.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(IdempotencyKey)
            .where(IdempotencyKey.expires_at <= func.now())
        )
    return int(count or 0)


async def _keys_of(app: FastAPI, user: uuid.UUID) -> int:
    async with app.state.db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(IdempotencyKey).where(IdempotencyKey.user_id == user)
        )
    return int(count or 0)


async def test_expired_keys_are_purged_in_bounded_batches(app: FastAPI, settings: Settings) -> None:
    await _add_keys(app, 2500, expired=True)
    live = await _add_keys(app, 10, expired=False)
    total = await _expired(app)  # earlier tests may have left a few expired keys too

    bounded = settings.model_copy(
        update={"payments_purge_batch": 1000, "payments_purge_max_batches": 2}
    )
    first = await reconciliation(app, bounded).purge_expired_keys()
    assert first == [1000, 1000]  # a run stops at its bound, leaving the rest for the next
    assert await _expired(app) == total - 2000

    rest = await reconciliation(
        app, bounded.model_copy(update={"payments_purge_max_batches": 10})
    ).purge_expired_keys()
    assert sum(rest) == total - 2000
    assert all(n <= 1000 for n in rest)
    assert await _expired(app) == 0
    assert await _keys_of(app, live) == 10  # keys still within their 24 hours stay


@pytest.mark.slow
async def test_the_worker_reconciles_and_purges_on_its_own(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    migrated: Stack,
    flaky: Interrupting,
    make_product: ProductFactory,
    buyer: Caller,
    tmp_path: Path,
) -> None:
    product = await make_product(price=990)
    body = {"items": [{"product_id": product["id"]}], "payment_token": "tok_success"}
    flaky.die = "after"  # charged at the provider; the request died before recording it
    ports = service.PaymentsPorts(provider=flaky)
    with pytest.raises(Died):
        await service.CheckoutService(app.state.db.session, settings, ports).checkout(
            user_id=buyer.user_id,
            key=str(uuid.uuid4()),
            request=CheckoutRequest.model_validate(body),
        )
    stale = await _add_keys(app, 1500, expired=True)
    async with app.state.db.session.begin() as session:  # the dead request's lease has lapsed
        await session.execute(
            text("UPDATE payments_idempotency_key SET locked_until = now() WHERE user_id = :u"),
            {"u": buyer.user_id},
        )

    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_DATABASE_URL": migrated.primary_url,
        "APP_REPLICA_DATABASE_URL": migrated.replica_url,
        "APP_EMAIL_BACKEND": "memory",
        "APP_LOG_JSON": "true",
        "APP_PAYMENTS_PROVIDER_TIMEOUT_SECONDS": "1",
        "APP_PAYMENTS_IDEMPOTENCY_LEASE_SECONDS": "2",
        "APP_PAYMENTS_RECONCILE_AFTER_SECONDS": "2",
        "APP_PAYMENTS_RECONCILE_INTERVAL_SECONDS": "0.5",
        "APP_PAYMENTS_PURGE_INTERVAL_SECONDS": "0.5",
        "APP_PAYMENTS_PURGE_BATCH": "500",
    }
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(  # noqa: ASYNC220 - starting it returns at once
            [sys.executable, "-m", "app", "worker", "--metrics-port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        async def paid() -> bool:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            async with app.state.db.session() as session:
                status = await session.scalar(
                    select(Order.status).where(Order.user_id == buyer.user_id)
                )
            return bool(status == "paid")

        await wait_for(paid, timeout=120, interval=0.2)

        async def purged() -> bool:
            return await _keys_of(app, stale) == 0

        await wait_for(purged, timeout=60, interval=0.2)
        async with httpx.AsyncClient() as http:
            scrape = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=10)).text
        settled = re.search(
            r'payments_reconciliations_total\{kind="payment",outcome="succeeded"\} (\S+)', scrape
        )
        assert settled is not None
        assert float(settled.group(1)) >= 1
        assert "payments_idempotency_keys_purged_total" in scrape
        assert 'jobs_runs_total{job="payments.reconcile",outcome="ok"}' in scrape
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
