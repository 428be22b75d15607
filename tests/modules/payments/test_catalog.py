"""Catalog: admin writes, paginated and filtered lists, ranked full-text search, replica reads."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.helpers import max_queries, wait_for
from tests.modules.payments.conftest import Caller, ProductFactory
from tools.pgstack import Stack

PROBLEM = "application/problem+json"


def word() -> str:
    """A word no other product contains, so searches here see only this test's products."""
    return "zq" + uuid.uuid4().hex[:10].translate(str.maketrans("0123456789", "ghijklmnop"))


async def test_admin_creates_updates_and_deactivates(
    client: httpx.AsyncClient, admin: Caller, buyer: Caller, make_product: ProductFactory
) -> None:
    product = await make_product("Desk lamp", price=4999, currency="eur")
    assert (product["currency"], product["price_amount"], product["active"]) == ("EUR", 4999, True)

    changed = await client.patch(
        f"/v1/products/{product['id']}", json={"price_amount": 3999}, headers=admin.headers
    )
    assert changed.status_code == 200
    assert changed.json()["price_amount"] == 3999
    assert changed.json()["name"] == "Desk lamp"

    gone = await client.delete(f"/v1/products/{product['id']}", headers=admin.headers)
    assert gone.status_code == 204

    # Reads come from the replica, which may trail the primary by a moment.
    async def replayed() -> bool:
        seen = await client.get(f"/v1/products/{product['id']}", headers=admin.headers)
        return seen.status_code == 200 and seen.json()["active"] is False

    await wait_for(replayed)  # admins still see it, marked inactive
    assert (await client.get(f"/v1/products/{product['id']}")).status_code == 404


async def test_members_and_strangers_cannot_write(
    client: httpx.AsyncClient, buyer: Caller, make_product: ProductFactory
) -> None:
    body = {"name": "x", "price_amount": 1, "currency": "EUR"}
    assert (await client.post("/v1/products", json=body)).status_code == 401
    forbidden = await client.post("/v1/products", json=body, headers=buyer.headers)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == PROBLEM
    product = await make_product()
    response = await client.delete(f"/v1/products/{product['id']}", headers=buyer.headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "price_amount": -1, "currency": "EUR"},
        {"name": "x", "price_amount": 1, "currency": "EURO"},
        {"name": "x", "price_amount": 1.5, "currency": "EUR"},
        {"name": "", "price_amount": 1, "currency": "EUR"},
        {"name": "x", "price_amount": 1, "currency": "EUR", "surprise": True},
        {"price_amount": 1, "currency": "EUR"},
    ],
)
async def test_bad_product_input_is_a_problem(
    client: httpx.AsyncClient, admin: Caller, body: dict[str, object]
) -> None:
    response = await client.post("/v1/products", json=body, headers=admin.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


async def test_unknown_product_is_404(client: httpx.AsyncClient, admin: Caller) -> None:
    missing = uuid.uuid4()
    assert (await client.get(f"/v1/products/{missing}")).status_code == 404
    patch = await client.patch(f"/v1/products/{missing}", json={"name": "x"}, headers=admin.headers)
    assert patch.status_code == 404
    assert patch.headers["content-type"] == PROBLEM


async def test_list_paginates_and_filters(
    client: httpx.AsyncClient, admin: Caller, make_product: ProductFactory
) -> None:
    # A currency of its own (no other test prices in it) keeps their products out of this listing.
    currency = "NOK"
    made = [await make_product(price=100 * i, currency=currency) for i in range(1, 6)]
    hidden = await make_product(price=250, currency=currency)
    await client.delete(f"/v1/products/{hidden['id']}", headers=admin.headers)

    async def ids(**params: str | int | bool) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            query: dict[str, str | int | bool] = {"currency": currency, "limit": 2, **params}
            if cursor:
                query["cursor"] = cursor
            page = await client.get("/v1/products", params=query)
            assert page.status_code == 200, page.text
            assert len(page.json()["items"]) <= 2
            seen += [p["id"] for p in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return seen

    async def admin_sees_all() -> bool:
        listed = await client.get(
            "/v1/products",
            params={"currency": currency, "include_inactive": True, "limit": 100},
            headers=admin.headers,
        )
        items = listed.json()["items"]
        return len(items) == 6 and [p["active"] for p in items if p["id"] == hidden["id"]] == [
            False
        ]

    await wait_for(admin_sees_all)  # the replica has replayed every write above

    newest_first = [p["id"] for p in reversed(made)]
    assert await ids() == newest_first
    assert await ids(min_price=200, max_price=400) == newest_first[1:4]
    # Inactive products are hidden, also from anyone but admins asking for them.
    assert hidden["id"] not in await ids(include_inactive=True)


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"limit": 0},
        {"limit": 101},
        {"currency": "E1R"},
        {"min_price": -1},
    ],
)
async def test_bad_list_parameters_are_problems(
    client: httpx.AsyncClient, params: dict[str, str | int]
) -> None:
    response = await client.get("/v1/products", params=params)
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == PROBLEM


async def test_search_finds_words_in_name_and_description_and_ranks_the_better_match_first(
    client: httpx.AsyncClient, make_product: ProductFactory
) -> None:
    term, other = word(), word()
    in_description = await make_product("Plain mug", description=f"A mug for {term} lovers")
    in_name = await make_product(f"{term} teapot", description="Ceramic, holds a litre")
    await make_product(f"{other} kettle", description="Boils water")

    async def search(q: str) -> dict[str, object]:
        response = await client.get("/v1/products/search", params={"q": q})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    async def found() -> dict[str, object] | None:
        body = await search(term)
        items = body["items"]
        assert isinstance(items, list)
        return body if len(items) == 2 else None

    result = await wait_for(found)
    items = result["items"]
    assert isinstance(items, list)
    # The name match (weight A) ranks above the description match (weight B).
    assert [p["id"] for p in items] == [in_name["id"], in_description["id"]]
    assert items[0]["rank"] > items[1]["rank"]
    uuid.UUID(str(result["search_id"]))
    assert result["query"] == term

    # Words from the description alone, stemmed; web search syntax.
    by_description = await search(f"ceramic litres {term}")
    assert [p["id"] for p in by_description["items"]] == [in_name["id"]]  # type: ignore[attr-defined]
    excluded = await search(f"{term} -teapot")
    assert [p["id"] for p in excluded["items"]] == [in_description["id"]]  # type: ignore[attr-defined]
    # Every search has its own id, even for the same words.
    assert (await search(term))["search_id"] != result["search_id"]
    assert (await search(word()))["items"] == []


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "x" * 201}, {"q": "mug", "limit": 500}])
async def test_bad_search_parameters_are_problems(
    client: httpx.AsyncClient, params: dict[str, str | int]
) -> None:
    response = await client.get("/v1/products/search", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


async def test_list_and_search_read_from_the_replica(
    client: httpx.AsyncClient, make_product: ProductFactory, pg_stack: Stack
) -> None:
    term = word()
    for node in pg_stack.replicas:  # the app reads from every replica
        node.psql("SELECT pg_wal_replay_pause()")
    try:
        product = await make_product(f"{term} chair", currency="MNT")  # committed on the primary
        # The writer's client carries the consistency token: it reads its own write.
        own = await client.get(f"/v1/products/{product['id']}")
        assert own.status_code == 200
        # Anyone else reads the replica, which has not replayed the insert.
        client.cookies.clear()

        listed = await client.get("/v1/products", params={"currency": "MNT", "limit": 100})
        searched = await client.get("/v1/products/search", params={"q": term})
        one = await client.get(f"/v1/products/{product['id']}")
        assert product["id"] not in [p["id"] for p in listed.json()["items"]]
        assert searched.json()["items"] == []
        assert one.status_code == 404
    finally:
        for node in pg_stack.replicas:
            node.psql("SELECT pg_wal_replay_resume()")

    async def visible() -> bool:
        listed = await client.get("/v1/products", params={"currency": "MNT", "limit": 100})
        searched = await client.get("/v1/products/search", params={"q": term})
        return product["id"] in [p["id"] for p in listed.json()["items"]] and bool(
            searched.json()["items"]
        )

    await wait_for(visible)


async def test_catalog_reads_keep_their_query_budget(
    client: httpx.AsyncClient, make_product: ProductFactory
) -> None:
    """One query per page, whether it holds one product or a hundred."""
    term = word()
    currency = "SEK"  # no other test prices in it
    await make_product(f"{term} lamp", currency=currency)
    client.cookies.clear()  # read as a stranger: the replica, no read-your-writes wait
    with max_queries(1):
        one = await client.get("/v1/products", params={"currency": currency, "limit": 100})
    for i in range(30):
        await make_product(f"{term} lamp {i}", currency=currency)
    client.cookies.clear()
    with max_queries(1):
        many = await client.get("/v1/products", params={"currency": currency, "limit": 100})
    with max_queries(1):
        found = await client.get("/v1/products/search", params={"q": term, "limit": 50})
    assert one.status_code == many.status_code == found.status_code == 200
    assert len(many.json()["items"]) >= len(one.json()["items"])
