"""payments' catalog, order and webhook use cases against in-memory repositories."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.modules.payments.interface import OrderPaid, PaymentFailed
from app.modules.payments.models import Order, Payment, Product, Refund
from app.modules.payments.providers.signing import sign
from app.modules.payments.schemas import ProductUpdate
from app.modules.payments.service import CatalogService, OrdersService, WebhooksService
from app.modules.payments.service.cache import ProductCache
from app.modules.payments.service.webhooks import (
    WebhookMalformed,
    WebhookSignatureInvalid,
    WebhookTimestampStale,
)
from app.platform.db.read_session import AsyncReadSession
from app.platform.errors import NotFound
from app.platform.pagination import Keyset
from tests.unit.fakes import Clock, FakeSession, Ids, RecordingOutbox, unit_settings

SECRET = "whsec_unit"
BUYER = uuid.UUID(int=3)


@dataclass
class MemoryPayments:
    """payments' queries over lists (the catalog, orders and webhooks ports)."""

    clock: Clock = field(default_factory=Clock)
    products: list[Product] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    webhook_events: dict[str, str | None] = field(default_factory=dict)
    reads: int = 0

    def product(self, price: int, *, active: bool = True) -> Product:
        self.clock.advance(seconds=1)
        row = Product(
            id=uuid.uuid4(),
            name=f"Lamp {len(self.products)}",
            description="",
            price_amount=price,
            currency="EUR",
            active=active,
            created_at=self.clock(),
            updated_at=self.clock(),
        )
        self.products.append(row)
        return row

    def order(self, user_id: uuid.UUID, status: str = "pending") -> tuple[Order, Payment]:
        self.clock.advance(seconds=1)
        order = Order(
            id=uuid.uuid4(),
            user_id=user_id,
            status=status,
            currency="EUR",
            total_amount=1200,
            refunded_amount=0,
            items=[],
            created_at=self.clock(),
            updated_at=self.clock(),
        )
        payment = Payment(
            id=uuid.uuid4(),
            order_id=order.id,
            status="pending",
            amount=1200,
            currency="EUR",
            refunded_amount=0,
        )
        self.orders.append(order)
        self.payments.append(payment)
        return order, payment

    async def get_product(self, session: AsyncReadSession, product_id: uuid.UUID) -> Product | None:
        self.reads += 1
        return next((p for p in self.products if p.id == product_id), None)

    async def list_products(
        self,
        session: AsyncReadSession,
        *,
        limit: int,
        after: Keyset | None,
        include_inactive: bool,
        currency: str | None,
        min_price: int | None,
        max_price: int | None,
    ) -> list[Product]:
        rows = [p for p in self.products if include_inactive or p.active]
        rows = [p for p in rows if min_price is None or p.price_amount >= min_price]
        rows.sort(key=lambda p: (p.created_at, p.id), reverse=True)
        return [p for p in rows if after is None or (p.created_at, p.id) < after][:limit]

    async def search_products(
        self, session: AsyncReadSession, query: str, *, limit: int
    ) -> list[tuple[Product, float]]:
        return [(p, 1.0) for p in self.products if query.lower() in p.name.lower()][:limit]

    async def list_orders(
        self, session: AsyncReadSession, user_id: uuid.UUID, *, limit: int, after: Keyset | None
    ) -> list[Order]:
        rows = sorted(
            (o for o in self.orders if o.user_id == user_id),
            key=lambda o: (o.created_at, o.id),
            reverse=True,
        )
        return [o for o in rows if after is None or (o.created_at, o.id) < after][:limit]

    async def get_order(
        self, session: AsyncReadSession, order_id: uuid.UUID, *, user_id: uuid.UUID | None = None
    ) -> Order | None:
        found = [o for o in self.orders if o.id == order_id]
        return next((o for o in found if user_id is None or o.user_id == user_id), None)

    async def record_webhook_event(
        self, session: AsyncReadSession, *, event_id: str, type_: str, payload: dict[str, Any]
    ) -> bool:
        if event_id in self.webhook_events:
            return False
        self.webhook_events[event_id] = None
        return True

    async def set_webhook_outcome(
        self, session: AsyncReadSession, event_id: str, outcome: str
    ) -> None:
        self.webhook_events[event_id] = outcome

    async def get_refund_by_id(
        self, session: AsyncReadSession, refund_id: uuid.UUID
    ) -> Refund | None:
        return None

    async def lock_payment_by_reference(
        self, session: AsyncReadSession, *, charge_id: str | None, payment_id: uuid.UUID | None
    ) -> tuple[Payment, Order] | None:
        for payment in self.payments:
            if payment.id == payment_id or (charge_id and payment.provider_charge_id == charge_id):
                order = next(o for o in self.orders if o.id == payment.order_id)
                return payment, order
        return None


@pytest.fixture
def repo() -> MemoryPayments:
    return MemoryPayments()


@pytest.fixture
def cache() -> ProductCache:
    live = ProductCache()
    live.live = lambda: True  # as if its invalidations could arrive
    return live


def _catalog(repo: MemoryPayments, cache: ProductCache) -> CatalogService:
    session = FakeSession(repo.clock)
    return CatalogService(session.as_session(), repo=repo, cache=cache, ids=Ids())


async def test_an_active_product_is_read_once_then_served_from_the_cache(
    repo: MemoryPayments, cache: ProductCache
) -> None:
    product = repo.product(990)
    catalog = _catalog(repo, cache)
    first = await catalog.get_product(product.id, include_inactive=False)
    again = await catalog.get_product(product.id, include_inactive=False)
    assert first == again
    assert repo.reads == 1
    updated = await catalog.update_product(
        product.id, ProductUpdate.model_validate({"price_amount": 1290})
    )
    assert updated.price_amount == 1290
    fresh = await catalog.get_product(product.id, include_inactive=False)
    assert fresh.price_amount == 1290  # the change dropped the cached entry
    assert repo.reads == 3


async def test_an_inactive_product_is_not_found_unless_asked_for(
    repo: MemoryPayments, cache: ProductCache
) -> None:
    product = repo.product(990)
    catalog = _catalog(repo, cache)
    await catalog.deactivate_product(product.id)
    with pytest.raises(NotFound):
        await catalog.get_product(product.id, include_inactive=False)
    assert (await catalog.get_product(product.id, include_inactive=True)).active is False
    with pytest.raises(NotFound):
        await catalog.update_product(uuid.uuid4(), ProductUpdate.model_validate({"name": "x"}))


async def test_the_catalog_pages_newest_first_and_search_names_its_search(
    repo: MemoryPayments, cache: ProductCache
) -> None:
    made = [repo.product(100 * n) for n in range(1, 6)]
    catalog = _catalog(repo, cache)
    seen, cursor = [], None
    while True:
        page = await catalog.list_products(
            limit=2,
            cursor=cursor,
            include_inactive=False,
            currency=None,
            min_price=None,
            max_price=None,
        )
        seen += [p.id for p in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == [p.id for p in reversed(made)]
    found = await catalog.search_products("lamp 3", limit=5)
    assert [h.id for h in found.items] == [made[3].id]
    assert found.search_id == uuid.UUID(int=1)


async def test_a_buyer_sees_only_their_own_orders(repo: MemoryPayments) -> None:
    mine = [repo.order(BUYER)[0] for _ in range(3)]
    theirs, _ = repo.order(uuid.UUID(int=4))
    orders = OrdersService(FakeSession().as_session(), repo=repo)
    first = await orders.list_orders(BUYER, limit=2, cursor=None)
    rest = await orders.list_orders(BUYER, limit=2, cursor=first.next_cursor)
    assert [o.id for o in first.items + rest.items] == [o.id for o in reversed(mine)]
    assert rest.next_cursor is None
    with pytest.raises(NotFound):
        await orders.get_order(BUYER, theirs.id)


def _event(event_id: str, kind: str, **data: Any) -> bytes:
    return json.dumps({"id": event_id, "type": kind, "data": data}).encode()


@pytest.fixture
def outbox() -> RecordingOutbox:
    return RecordingOutbox()


@pytest.fixture
def webhooks(repo: MemoryPayments, outbox: RecordingOutbox) -> WebhooksService:
    settings = unit_settings(payments_webhook_secret=SECRET)
    return WebhooksService(FakeSession().as_session(), settings, repo=repo, outbox=outbox)


async def test_a_charge_succeeded_webhook_pays_a_pending_order_once(
    webhooks: WebhooksService, repo: MemoryPayments, outbox: RecordingOutbox
) -> None:
    order, payment = repo.order(BUYER)
    body = _event("evt_1", "charge.succeeded", charge_id="ch_1", reference=str(payment.id))
    assert await webhooks.handle(signature=sign(SECRET, body), body=body) == "applied"
    assert (order.status, payment.status, payment.provider_charge_id) == (
        "paid",
        "succeeded",
        "ch_1",
    )
    assert [e.order_id for e in outbox.of(OrderPaid)] == [order.id]
    assert await webhooks.handle(signature=sign(SECRET, body), body=body) == "duplicate"
    late = _event("evt_2", "charge.failed", charge_id="ch_1", reference=str(payment.id))
    assert await webhooks.handle(signature=sign(SECRET, late), body=late) == "ignored"
    assert order.status == "paid"  # a late failure never flips a paid order
    assert repo.webhook_events == {"evt_1": "applied", "evt_2": "ignored"}


async def test_a_charge_failed_webhook_fails_the_order_with_its_reason(
    webhooks: WebhooksService, repo: MemoryPayments, outbox: RecordingOutbox
) -> None:
    order, payment = repo.order(BUYER)
    body = _event("evt_3", "charge.failed", reference=str(payment.id), failure_code="card_lost")
    assert await webhooks.handle(signature=sign(SECRET, body), body=body) == "applied"
    assert (order.status, payment.failure_code) == ("failed", "card_lost")
    assert [e.reason for e in outbox.of(PaymentFailed)] == ["card_lost"]


async def test_webhooks_that_are_unsigned_stale_or_not_events_change_nothing(
    webhooks: WebhooksService, repo: MemoryPayments, outbox: RecordingOutbox
) -> None:
    body = _event("evt_4", "charge.succeeded", reference=str(uuid.uuid4()))
    with pytest.raises(WebhookSignatureInvalid):
        await webhooks.handle(signature=sign("another-secret", body), body=body)
    with pytest.raises(WebhookTimestampStale):
        await webhooks.handle(signature=sign(SECRET, body, int(time.time()) - 3600), body=body)
    malformed = json.dumps({"id": "evt_5", "type": "charge.succeeded"}).encode()
    with pytest.raises(WebhookMalformed):
        await webhooks.handle(signature=sign(SECRET, malformed), body=malformed)
    assert await webhooks.handle(signature=sign(SECRET, body), body=body) == "ignored"
    assert outbox.events == []
