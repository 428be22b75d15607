"""Payments test fixtures: callers, a fast fake provider, committed events, query counting."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from app.bootstrap import use_payments_provider
from app.modules.payments.interface import EVENTS, PaymentsEvent
from app.modules.payments.models import Order, Payment
from app.modules.payments.providers import (
    ChargeResult,
    FakePaymentProvider,
    PaymentProvider,
    RefundResult,
)
from app.modules.payments.providers.signing import SIGNATURE_HEADER, sign
from app.modules.payments.service import PaymentsPorts, ReconciliationService
from app.platform.config import Settings
from app.platform.events import Event
from app.platform.security import create_access_token
from tests.helpers import make_settings
from tools.pgstack import Stack

E = TypeVar("E", bound=Event)

WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef"
# Generous: the fake writes its ledger in PostgreSQL, on a machine that may be busy.
PROVIDER_TIMEOUT = 2.0


@pytest.fixture(scope="session")
def settings(migrated: Stack) -> Settings:
    # The replicas serve catalog reads: wait until each has replayed the migrations.
    deadline = time.monotonic() + 30
    for node in migrated.replicas:
        while node.psql("SELECT to_regclass('payments_product') IS NOT NULL", db="app") != "t":
            assert time.monotonic() < deadline, f"{node.name} did not replay the payments migration"
            time.sleep(0.05)
    return make_settings(
        migrated,
        payments_provider_timeout_seconds=PROVIDER_TIMEOUT,
        payments_fake_provider_latency_ms=0,
        payments_webhook_secret=WEBHOOK_SECRET,
    )


@pytest.fixture
async def provider(app: FastAPI, settings: Settings) -> AsyncIterator[FakePaymentProvider]:
    """The app's provider, installed before the first request; ``charges``/``refunds`` list what
    it did in this test (its ledger, shared by every process, holds every test's)."""
    fake = FakePaymentProvider(str(settings.database_url), latency_ms=0)
    await fake.find_charge(reference="warm-up")  # connected before the first timed call
    use_payments_provider(app, fake)
    yield fake
    await fake.aclose()


def reconciliation(
    app: FastAPI, settings: Settings, provider: PaymentProvider | None = None
) -> ReconciliationService:
    """The worker's payments jobs on the app's database, with ``provider`` (default: the app's)."""
    ports: PaymentsPorts = app.state.payments_ports
    if provider is not None:
        ports = PaymentsPorts(provider=provider, clock=ports.clock, ids=ports.ids)
    return ReconciliationService(app.state.db.session, settings, ports)


@dataclass
class Caller:
    user_id: uuid.UUID
    headers: dict[str, str]

    def with_key(self, key: str | None = None) -> dict[str, str]:
        return {**self.headers, "Idempotency-Key": key or str(uuid.uuid4())}


def _caller(settings: Settings, roles: list[str]) -> Caller:
    user_id = uuid.uuid4()
    token = create_access_token(settings, user_id, roles)
    return Caller(user_id, {"Authorization": f"Bearer {token}"})


@pytest.fixture
def admin(settings: Settings) -> Caller:
    return _caller(settings, ["member", "admin"])


@pytest.fixture
def buyer(settings: Settings) -> Caller:
    return _caller(settings, ["member"])


@pytest.fixture
def other_buyer(settings: Settings) -> Caller:
    return _caller(settings, ["member"])


@dataclass
class ProductFactory:
    client: httpx.AsyncClient
    admin: Caller

    async def __call__(
        self,
        name: str | None = None,
        *,
        price: int = 1000,
        currency: str = "EUR",
        description: str = "",
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/products",
            json={
                "name": name or f"product {uuid.uuid4().hex[:8]}",
                "description": description,
                "price_amount": price,
                "currency": currency,
            },
            headers=self.admin.headers,
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@pytest.fixture
def make_product(client: httpx.AsyncClient, admin: Caller) -> ProductFactory:
    return ProductFactory(client, admin)


@dataclass
class CommittedEvents:
    """The payments events in the outbox that were published since the test began.

    Only committed transactions leave rows in the outbox, so these are exactly the events that
    will be delivered.
    """

    app: FastAPI
    since: datetime

    async def all(self) -> list[PaymentsEvent]:
        by_name = {e.name: e for e in EVENTS}
        async with self.app.state.db.session() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT name, payload FROM platform_outbox_event "
                        "WHERE name LIKE 'payments.%' AND published_at >= :since "
                        "ORDER BY published_at, id"
                    ),
                    {"since": self.since},
                )
            ).all()
        return [by_name[name].model_validate(payload) for name, payload in rows]

    async def of(self, kind: type[E], **match: Any) -> list[E]:
        return [
            e
            for e in await self.all()
            if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items())
        ]


@pytest.fixture
async def events(app: FastAPI) -> CommittedEvents:
    # Tests in this package run one at a time; the clock of the database orders them.
    async with app.state.db.session() as session:
        since = (await session.execute(text("SELECT clock_timestamp()"))).scalar_one()
    return CommittedEvents(app, since)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def signed_webhook(
    payload: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    t = int(time.time()) if timestamp is None else timestamp
    return body, {SIGNATURE_HEADER: sign(secret, body, t), "Content-Type": "application/json"}


@pytest.fixture
async def db_session(app: FastAPI) -> AsyncIterator[Any]:
    """A primary session for looking at rows directly."""
    async with app.state.db.session() as session:
        yield session


class Died(BaseException):
    """The process died here: nothing after this line of the request ran (not an Exception)."""


class Interrupting:
    """The app's provider, with the request dying before or after the provider acted."""

    def __init__(self, real: FakePaymentProvider) -> None:
        self.real = real
        self.die: str | None = None  # "before", "after"; "lost": the answer is lost (raises)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def _around(self, call: Any) -> Any:
        mode, self.die = self.die, None
        if mode == "before":
            call.close()  # never sent
            raise Died
        result = await call
        if mode == "after":
            raise Died
        if mode == "lost":
            raise ConnectionResetError("the provider's answer was lost")
        return result

    async def charge(self, **kwargs: Any) -> ChargeResult:
        result: ChargeResult = await self._around(self.real.charge(**kwargs))
        return result

    async def refund(self, **kwargs: Any) -> RefundResult:
        result: RefundResult = await self._around(self.real.refund(**kwargs))
        return result


@pytest.fixture
def flaky(app: FastAPI, provider: FakePaymentProvider) -> Interrupting:
    wrapper = Interrupting(provider)
    use_payments_provider(app, wrapper)
    return wrapper


# --- checkout's helpers (test_checkout.py, test_checkout_keys.py) ---------------------------

PROBLEM = "application/problem+json"


def cart(
    product: dict[str, Any], quantity: int = 1, pay_with: str = "tok_success"
) -> dict[str, Any]:
    return {
        "items": [{"product_id": product["id"], "quantity": quantity}],
        "payment_token": pay_with,
    }


async def orders_of(app: FastAPI, user_id: uuid.UUID) -> list[tuple[Order, Payment]]:
    async with app.state.db.session() as session:
        rows = await session.execute(
            select(Order, Payment)
            .join(Payment, Payment.order_id == Order.id)
            .where(Order.user_id == user_id)
        )
        return [(o, p) for o, p in rows.all()]
