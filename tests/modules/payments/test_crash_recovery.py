"""``kill -9`` of a real server process in the middle of checkouts and refunds.

The server runs as its own process with a slow fake provider whose ledger lives in PostgreSQL
(its own schema), so the ledger outlives the killed server as a real provider's would. Every key
interrupted by the kill is retried (honouring ``Retry-After``) against a restarted server, then
one pass of the worker's reconciliation job runs. Nothing may
be lost, duplicated or left pending, and the provider's ledger must agree with ours.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.modules.payments import service
from app.modules.payments.providers import FakePaymentProvider
from app.modules.payments.service import ReconcileReport
from app.platform.config import Settings
from app.platform.db import Database
from app.platform.security import create_access_token
from tests.e2e.conftest import ROOT, Server, stop_server
from tools.pgstack import Stack, free_port

pytestmark = pytest.mark.slow

SERVER_ENV = {
    # Slow enough that the kill lands while many charges are at the provider.
    "APP_PAYMENTS_FAKE_PROVIDER_LATENCY_MS": "400",
    "APP_PAYMENTS_PROVIDER_TIMEOUT_SECONDS": "5",
    # Short, so the test need not wait long for the dead requests' leases to lapse.
    "APP_PAYMENTS_IDEMPOTENCY_LEASE_SECONDS": "6",
    "APP_PAYMENTS_RECONCILE_AFTER_SECONDS": "6",
    "APP_EMAIL_BACKEND": "memory",
    "APP_DB_POOL_SIZE": "20",
}
CONCURRENCY = 25


class Servers:
    """The server under test; ``restart`` after a kill; every process stopped at the end."""

    def __init__(self, stack: Stack, folder: Path) -> None:
        self.stack, self.folder, self.started = stack, folder, 0
        self.current: Server | None = None

    def start(self) -> Server:
        """A server process as `make run` starts one; a generous ceiling for a loaded machine."""
        began = time.monotonic()
        self.started += 1
        log = self.folder / f"server-{self.started}.log"
        port = free_port()
        env = {**_env(self.stack), **SERVER_ENV}
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        self.current = Server(process, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, f"server exited:\n{self.current.output()}"
            try:
                if httpx.get(self.current.base_url + "/healthz", timeout=5).status_code == 200:
                    print(f"server {self.started} up in {time.monotonic() - began:.1f}s")
                    return self.current
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server did not come up:\n{self.current.output()}")

    def kill(self) -> None:
        assert self.current is not None
        self.current.process.send_signal(signal.SIGKILL)
        self.current.process.wait(timeout=30)

    def stop(self) -> None:
        if self.current is not None:
            stop_server(self.current)


@pytest.fixture
def servers(migrated: Stack, tmp_path: Path) -> Iterator[Servers]:
    running = Servers(migrated, tmp_path)
    yield running
    running.stop()


def _bearer(settings: Settings, user_id: uuid.UUID, roles: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_access_token(settings, user_id, roles)}"}


async def _until_answered(
    send: Callable[[], Awaitable[httpx.Response]], deadline: float, gate: asyncio.Semaphore
) -> tuple[httpx.Response, int]:
    """Retry ``send`` through 409s (after their ``Retry-After``) and transport errors."""
    waits = 0
    while True:
        assert time.monotonic() < deadline, "a retried key never got its answer"
        try:
            async with gate:  # a client's fair share of the server, like the first storm
                response = await send()
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        if response.status_code not in (409, 503, 504) or (
            response.status_code == 409
            and response.json()["type"] != "/problems/idempotency-key-in-progress"
        ):
            return response, waits
        waits += 1
        await asyncio.sleep(min(float(response.headers.get("retry-after", "1")), 15.0))


async def _storm(
    base_url: str,
    requests: list[Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]],
    kill: Callable[[], None],
    kill_after: int,
) -> dict[int, int | str]:
    """Send every request (``CONCURRENCY`` at a time); kill the server after ``kill_after``."""
    answered: dict[int, int | str] = {}
    gate = asyncio.Semaphore(CONCURRENCY)
    killed = asyncio.Event()

    async def one(i: int, client: httpx.AsyncClient) -> None:
        async with gate:
            if killed.is_set():
                answered[i] = "not sent"
                return
            try:
                answered[i] = (await requests[i](client)).status_code
            except httpx.TransportError as exc:
                answered[i] = type(exc).__name__
            if len([a for a in answered.values() if isinstance(a, int)]) == kill_after:
                killed.set()
                await asyncio.to_thread(kill)

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        await asyncio.gather(*(one(i, client) for i in range(len(requests))))
    return answered


def _env(stack: Stack) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "test",
        "APP_DATABASE_URL": stack.primary_url,
        "APP_REPLICA_DATABASE_URL": stack.replica_url,
        "APP_LOG_JSON": "true",
    }


async def _reconcile_once(stack: Stack, settings: Settings) -> ReconcileReport:
    """One pass of the worker's reconciliation job, over everything pending (no age bound)."""
    began = time.monotonic()
    db, provider = Database(settings), FakePaymentProvider(stack.primary_url)
    try:
        ports = service.PaymentsPorts(provider=provider)
        jobs = service.ReconciliationService(db.session, settings, ports)
        report = await jobs.reconcile(older_than=0)
    finally:
        await provider.aclose()
        await db.dispose()
    print(f"reconciliation pass: {report} in {time.monotonic() - began:.1f}s")
    return report


async def _rows(stack: Stack, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(stack.primary_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def _product(client: httpx.AsyncClient, admin: dict[str, str], price: int) -> str:
    response = await client.post(
        "/v1/products",
        json={"name": f"crash {uuid.uuid4().hex[:6]}", "price_amount": price, "currency": "EUR"},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_kill_9_during_300_checkouts_loses_and_doubles_nothing(
    servers: Servers, migrated: Stack, settings: Settings
) -> None:
    buyer_id = uuid.uuid4()
    buyer = _bearer(settings, buyer_id, ["member"])
    server = servers.start()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        product = await _product(client, _bearer(settings, uuid.uuid4(), ["admin"]), 1500)
    body = {"items": [{"product_id": product}], "payment_token": "tok_success"}
    keys = [str(uuid.uuid4()) for _ in range(300)]

    def send(i: int) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
        return lambda c: c.post(
            "/v1/checkout", json=body, headers={**buyer, "Idempotency-Key": keys[i]}
        )

    began = time.monotonic()
    first = await _storm(server.base_url, [send(i) for i in range(300)], servers.kill, 250)
    print(f"storm until the kill: {time.monotonic() - began:.1f}s")
    interrupted = [i for i, status in first.items() if status != 201]
    cut = {201, "RemoteProtocolError", "ReadError", "ConnectError", "not sent"}
    assert set(first.values()) <= cut, Counter(first.values())  # no answer but success or a cut
    assert len(interrupted) >= CONCURRENCY // 2, "the kill should have cut requests in flight"

    restarted = servers.start()
    began, deadline = time.monotonic(), time.monotonic() + 50
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=restarted.base_url, timeout=60) as client:
        retried = await asyncio.gather(
            *(_until_answered(partial(send(i), client), deadline, gate) for i in interrupted)
        )
    recovered_in = time.monotonic() - began
    assert Counter(r.status_code for r, _ in retried) == {201: len(interrupted)}
    print(
        f"checkouts: {Counter(map(str, first.values()))} at the kill; {len(interrupted)} retried,"
        f" {sum(w for _, w in retried)} waits on 409, all answered within {recovered_in:.1f}s"
    )

    report = await _reconcile_once(migrated, settings)
    orders = await _rows(
        migrated,
        "SELECT o.status, p.status, p.id::text, k.key FROM payments_order o "
        "JOIN payments_payment p ON p.order_id = o.id "
        "LEFT JOIN payments_idempotency_key k ON k.order_id = o.id WHERE o.user_id = :u",
        u=buyer_id,
    )
    statuses = Counter((o, p) for o, p, _, _ in orders)
    assert statuses == {("paid", "succeeded"): 300}, (statuses, report)  # 0 lost, 0 pending
    assert sorted(k for *_, k in orders) == sorted(keys)  # one order per key: 0 duplicated
    ledger = FakePaymentProvider(migrated.primary_url)
    try:
        charges = await ledger.ledger_charges([ref for _, _, ref, _ in orders])
    finally:
        await ledger.aclose()
    assert len(charges) == 300
    assert Counter(c.reference for c in charges).most_common(1)[0][1] == 1


async def test_kill_9_during_300_refunds_settles_each_once(
    servers: Servers, migrated: Stack, settings: Settings
) -> None:
    buyer_id = uuid.uuid4()
    buyer = _bearer(settings, buyer_id, ["member"])
    server = servers.start()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        product = await _product(client, _bearer(settings, uuid.uuid4(), ["admin"]), 3000)
        body = {"items": [{"product_id": product}], "payment_token": "tok_success"}
        gate = asyncio.Semaphore(CONCURRENCY)

        async def buy() -> str:
            async with gate:
                response = await client.post(
                    "/v1/checkout",
                    json=body,
                    headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
                )
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        orders = await asyncio.gather(*(buy() for _ in range(100)))
    # Three refunds of 1000 per order, interleaved across orders.
    refunds = [(orders[i % 100], str(uuid.uuid4())) for i in range(300)]

    def send(i: int) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
        order_id, key = refunds[i]
        return lambda c: c.post(
            f"/v1/orders/{order_id}/refund",
            json={"amount": 1000},
            headers={**buyer, "Idempotency-Key": key},
        )

    began = time.monotonic()
    first = await _storm(server.base_url, [send(i) for i in range(300)], servers.kill, 250)
    print(f"storm until the kill: {time.monotonic() - began:.1f}s")
    interrupted = [i for i, status in first.items() if status != 201]
    assert len(interrupted) >= CONCURRENCY // 2, "the kill should have cut requests in flight"

    restarted = servers.start()
    began, deadline = time.monotonic(), time.monotonic() + 50
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=restarted.base_url, timeout=60) as client:
        retried = await asyncio.gather(
            *(_until_answered(partial(send(i), client), deadline, gate) for i in interrupted)
        )
    recovered_in = time.monotonic() - began
    assert Counter(r.status_code for r, _ in retried) == {201: len(interrupted)}, [
        r.text for r, _ in retried if r.status_code != 201
    ][:3]
    print(
        f"refunds: {Counter(map(str, first.values()))} at the kill; {len(interrupted)} retried,"
        f" all answered within {recovered_in:.1f}s"
    )
    await _reconcile_once(migrated, settings)

    ours = await _rows(
        migrated,
        "SELECT o.status, o.refunded_amount, p.refunded_amount, p.provider_charge_id, "
        "(SELECT count(*) FROM payments_refund r WHERE r.order_id = o.id "
        " AND r.status = 'succeeded'), "
        "(SELECT count(*) FROM payments_refund r WHERE r.order_id = o.id AND r.status <> "
        " 'succeeded') FROM payments_order o JOIN payments_payment p ON p.order_id = o.id "
        "WHERE o.user_id = :u",
        u=buyer_id,
    )
    assert Counter((s, a, b, n, other) for s, a, b, _, n, other in ours) == {
        ("refunded", 3000, 3000, 3, 0): 100
    }
    ledger = FakePaymentProvider(migrated.primary_url)
    try:
        theirs = await ledger.refunded_total([charge for *_, charge, _, _ in ours])
    finally:
        await ledger.aclose()
    assert theirs == sum(a for _, a, *_ in ours) == 300_000

    events = await _rows(
        migrated,
        "SELECT payload->>'refund_id' FROM platform_outbox_event "
        "WHERE name = 'payments.refund_issued' AND payload->>'user_id' = :u",
        u=str(buyer_id),
    )
    assert len(events) == 300  # published once each
    assert len({e for (e,) in events}) == 300

    async def notices() -> int:
        rows = await _rows(
            migrated,
            "SELECT count(*) FROM notifications_notification "
            "WHERE user_id = :u AND template = 'refund_issued'",
            u=buyer_id,
        )
        return int(rows[0][0])

    deadline = time.monotonic() + 50
    while (count := await notices()) < 300:
        assert time.monotonic() < deadline, f"{count} of 300 refund notices delivered"
        await asyncio.sleep(0.2)
    assert count == 300  # the buyer is told once per refund, not once per attempt
