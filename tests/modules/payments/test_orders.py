"""Orders: own only, paginated, with items and product names, in a constant number of queries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from app.modules.payments.models import Order, OrderItem, Payment
from tests.helpers import max_queries
from tests.modules.payments.conftest import Caller, ProductFactory

PROBLEM = "application/problem+json"


async def seed_orders(
    app: FastAPI, user_id: uuid.UUID, products: list[dict[str, object]], count: int
) -> list[uuid.UUID]:
    """``count`` paid orders of every product in ``products``, oldest first."""
    ids = []
    start = datetime.now(UTC) - timedelta(days=1)
    async with app.state.db.session() as session:
        for n in range(count):
            items = [
                OrderItem(
                    position=i,
                    product_id=uuid.UUID(str(p["id"])),
                    product_name=str(p["name"]),
                    unit_amount=int(str(p["price_amount"])),
                    quantity=1,
                    line_amount=int(str(p["price_amount"])),
                )
                for i, p in enumerate(products)
            ]
            total = sum(i.line_amount for i in items)
            order = Order(
                id=uuid.uuid4(),
                user_id=user_id,
                status="paid",
                currency="EUR",
                total_amount=total,
                refunded_amount=0,
                items=items,
                created_at=start + timedelta(seconds=n),
            )
            session.add(order)
            session.add(
                Payment(
                    order_id=order.id,
                    status="succeeded",
                    amount=total,
                    currency="EUR",
                    refunded_amount=0,
                    provider_charge_id=f"ch_seed_{order.id.hex}",
                )
            )
            ids.append(order.id)
        await session.commit()
    return ids


async def test_list_runs_the_same_few_queries_for_one_order_and_for_fifty(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_product: ProductFactory,
    buyer: Caller,
    other_buyer: Caller,
) -> None:
    products = [await make_product(f"part {i}", price=100 + i) for i in range(5)]
    await seed_orders(app, buyer.user_id, products[:1], 1)
    await seed_orders(app, other_buyer.user_id, products, 50)
    await seed_orders(app, other_buyer.user_id, products, 1)  # a 51st: the page is full

    with max_queries(3) as one:
        small = await client.get("/v1/orders", headers=buyer.headers)
    with max_queries(3) as fifty:
        page = await client.get("/v1/orders", params={"limit": 50}, headers=other_buyer.headers)

    assert small.status_code == page.status_code == 200
    assert len(small.json()["items"]) == 1
    assert len(page.json()["items"]) == 50
    assert all(len(o["items"]) == 5 for o in page.json()["items"])
    assert page.json()["items"][0]["items"][3]["product_name"] == "part 3"
    # Today two: the orders, then their items (selectinload); the budget allows the platform one.
    assert one.count == fifty.count


async def test_list_shows_own_orders_newest_first_across_pages(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_product: ProductFactory,
    buyer: Caller,
    other_buyer: Caller,
) -> None:
    product = await make_product()
    mine = await seed_orders(app, buyer.user_id, [product], 5)
    await seed_orders(app, other_buyer.user_id, [product], 3)

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await client.get("/v1/orders", params=params, headers=buyer.headers)
        assert page.status_code == 200
        seen += [o["id"] for o in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in reversed(mine)]


async def test_another_users_order_is_404(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_product: ProductFactory,
    buyer: Caller,
    other_buyer: Caller,
) -> None:
    product = await make_product()
    [order_id] = await seed_orders(app, buyer.user_id, [product], 1)

    own = await client.get(f"/v1/orders/{order_id}", headers=buyer.headers)
    assert own.status_code == 200
    assert own.json()["items"][0]["product_name"] == product["name"]
    theirs = await client.get(f"/v1/orders/{order_id}", headers=other_buyer.headers)
    assert theirs.status_code == 404
    assert theirs.headers["content-type"] == PROBLEM
    assert (
        await client.get(f"/v1/orders/{uuid.uuid4()}", headers=buyer.headers)
    ).status_code == 404
    assert (await client.get("/v1/orders")).status_code == 401


async def test_bad_order_list_parameters_are_problems(
    client: httpx.AsyncClient, buyer: Caller
) -> None:
    for params in ({"limit": 101}, {"limit": 0}, {"cursor": "%%%"}, {"cursor": "WzEsMl0"}):
        response = await client.get("/v1/orders", params=params, headers=buyer.headers)
        assert response.status_code in (400, 422), params
        assert response.headers["content-type"] == PROBLEM
    bad_id = await client.get("/v1/orders/not-a-uuid", headers=buyer.headers)
    assert bad_id.status_code == 422
