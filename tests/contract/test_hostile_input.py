"""No input is a 5xx: NUL characters, integers past their column, coerced JSON types.

PostgreSQL text and jsonb cannot hold U+0000 and a bigint stops at 2^63 - 1; each of the inputs
below reached the database and came back as a 500 before the platform refused them. Every
refusal is a 422 problem naming where the bad value was.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from app.modules.payments.providers.signing import SIGNATURE_HEADER, sign
from tests.contract.conftest import WEBHOOK_SECRET

PROBLEM = "application/problem+json"


def assert_refused(response: httpx.Response, *loc: str, kind: str | None = None) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "/problems/validation-error"
    assert body["request_id"] == response.headers["x-request-id"]
    if loc:
        assert [e["loc"][: len(loc)] for e in body["errors"]] == [list(loc)], body
    if kind:
        assert body["errors"][0]["type"] == kind, body


async def _product(client: httpx.AsyncClient, admin: dict[str, str], **fields: Any) -> Any:
    body = {"name": f"chair {uuid.uuid4().hex[:6]}", "price_amount": 1500, "currency": "EUR"}
    response = await client.post("/v1/products", json={**body, **fields}, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


async def _paid_order(
    client: httpx.AsyncClient, admin: dict[str, str], member: dict[str, str]
) -> Any:
    product = await _product(client, admin)
    response = await client.post(
        "/v1/checkout",
        json={"items": [{"product_id": product["id"]}], "payment_token": "tok_success"},
        headers={**member, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    return response.json()


# --- NUL characters --------------------------------------------------------------------------


async def test_nul_in_a_query_parameter_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/products/search", params={"q": "chair\x00"})
    assert_refused(response, "query", "q", kind="string_nul")


async def test_nul_in_a_path_is_refused(client: httpx.AsyncClient) -> None:
    assert_refused(await client.get("/v1/products/a%00b"), "path")


async def test_nul_in_a_header_is_refused(client: httpx.AsyncClient) -> None:
    # httpx refuses to send one; the ASGI scope is what a lenient server would hand over.
    request = client.build_request("GET", "/v1/products")
    request.headers["x-client-note"] = "a"  # replaced below, byte for byte
    raw = [(k, b"a\x00b" if k == b"x-client-note" else v) for k, v in request.headers.raw]
    request.headers = httpx.Headers(raw)
    assert_refused(await client.send(request), "header", "x-client-note")


@pytest.mark.parametrize("field", ["name", "description"])
async def test_nul_in_a_product_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str], field: str
) -> None:
    body = {"name": "chair", "price_amount": 1, "currency": "EUR", field: "oak\x00chair"}
    assert_refused(await client.post("/v1/products", json=body, headers=admin), "body")


async def test_nul_in_an_anonymous_id_is_refused(client: httpx.AsyncClient) -> None:
    batch = {"anonymous_id": "device\x00", "events": [{"type": "page_view", "path": "/"}]}
    assert_refused(await client.post("/v1/analytics/events", json=batch), "body")


async def test_nul_in_free_form_properties_is_refused(client: httpx.AsyncClient) -> None:
    event = {"type": "custom", "name": "clicked", "properties": {"label\x00": "x"}}
    batch = {"anonymous_id": "device-1", "events": [event]}
    assert_refused(await client.post("/v1/analytics/events", json=batch), "body")


async def test_nul_in_a_refund_reason_is_refused_and_nothing_is_refunded(
    client: httpx.AsyncClient, admin: dict[str, str], member: dict[str, str]
) -> None:
    order = await _paid_order(client, admin, member)
    response = await client.post(
        f"/v1/orders/{order['id']}/refund",
        json={"reason": "broken\x00"},
        headers={**member, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert_refused(response, "body")
    after = await client.get(f"/v1/orders/{order['id']}", headers=member)
    assert after.json()["refunded_amount"] == 0


async def test_nul_in_a_signed_webhook_is_refused(client: httpx.AsyncClient) -> None:
    body = json.dumps({"id": "evt_\x00", "type": "charge.succeeded", "data": {}}).encode()
    assert b"\\u0000" in body
    headers = {SIGNATURE_HEADER: sign(WEBHOOK_SECRET, body, int(time.time()))}
    response = await client.post("/v1/payments/webhooks/provider", content=body, headers=headers)
    assert_refused(response, "body")


async def test_a_nul_escape_split_across_body_chunks_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = b'{"name": "oak\\u0000", "price_amount": 1, "currency": "EUR"}'
    cut = body.index(b"u0000") - 1  # between the backslash and "u0000"

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:cut]
        yield body[cut:]

    headers = {**admin, "content-type": "application/json"}
    response = await client.post("/v1/products", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert_refused(response, "body")


async def test_an_escaped_backslash_before_u0000_is_only_text(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # JSON "\\u0000" is a backslash followed by the text u0000: nothing to refuse.
    product = await _product(client, admin, description="path C:\\u0000")
    assert product["description"] == "path C:\\u0000"


# --- integers past their column, numbers JSON should not carry -------------------------------


@pytest.mark.parametrize("param", ["max_price", "min_price"])
async def test_a_price_filter_past_bigint_is_refused(client: httpx.AsyncClient, param: str) -> None:
    assert_refused(await client.get("/v1/products", params={param: 10**20}), "query", param)


async def test_the_largest_bigint_filter_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/products", params={"max_price": 2**63 - 1})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", ['{"v": NaN}', '{"v": -Infinity}'])
async def test_unstorable_numbers_in_free_form_properties_are_refused(
    client: httpx.AsyncClient, value: str
) -> None:
    body = (
        '{"anonymous_id": "device-2", "events": '
        f'[{{"type": "custom", "name": "measured", "properties": {value}}}]}}'
    )
    response = await client.post(
        "/v1/analytics/events", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text  # jsonb has no NaN
    assert response.headers["content-type"] == PROBLEM


async def test_a_moment_outside_utc_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    params = {"from": "0001-01-01T00:00:00+01:00", "to": "0001-01-02T00:00:00Z"}
    response = await client.get("/v1/analytics/reports/funnel", params=params, headers=admin)
    assert_refused(response, "query", "from")


# --- strict JSON types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("active", 0), ("active", "true"), ("price_amount", "1500"), ("price_amount", 2.0)],
)
async def test_product_fields_are_not_coerced(
    client: httpx.AsyncClient, admin: dict[str, str], field: str, value: Any
) -> None:
    body = {"name": "chair", "price_amount": 1500, "currency": "EUR", field: value}
    assert_refused(await client.post("/v1/products", json=body, headers=admin), "body", field)


@pytest.mark.parametrize("quantity", ["3", 3.0, True])
async def test_a_quantity_is_an_integer(
    client: httpx.AsyncClient, admin: dict[str, str], member: dict[str, str], quantity: Any
) -> None:
    product = await _product(client, admin)
    response = await client.post(
        "/v1/checkout",
        json={
            "items": [{"product_id": product["id"], "quantity": quantity}],
            "payment_token": "tok_success",
        },
        headers={**member, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert_refused(response, "body", "items")
    orders = await client.get("/v1/orders", headers=member)
    assert orders.json()["items"] == []


async def test_preferences_are_booleans(client: httpx.AsyncClient, member: dict[str, str]) -> None:
    body = {"email": {"product_updates": 1}}  # a real category, a number for a flag
    response = await client.put("/v1/notifications/preferences", json=body, headers=member)
    assert_refused(response, "body", "email")


async def test_ids_and_moments_still_arrive_as_text(
    client: httpx.AsyncClient, admin: dict[str, str], member: dict[str, str]
) -> None:
    order = await _paid_order(client, admin, member)  # product_id as text
    assert order["status"] == "paid"
    moment = datetime.now(timezone(timedelta(hours=2))).isoformat()
    event = {"type": "page_view", "path": "/", "occurred_at": moment}
    response = await client.post(
        "/v1/analytics/events", json={"anonymous_id": "device-3", "events": [event]}
    )
    assert response.status_code == 202, response.text
