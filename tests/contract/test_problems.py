"""One shape for every failure: a request id on each problem, one type per kind of mistake."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from app.modules.payments.providers.signing import SIGNATURE_HEADER, sign
from tests.contract.conftest import WEBHOOK_SECRET

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_checkout_problems_carry_the_request_id(
    client: httpx.AsyncClient, admin: dict[str, str], member: dict[str, str]
) -> None:
    created = await client.post(
        "/v1/products", json={"name": "lamp", "price_amount": 900, "currency": "EUR"}, headers=admin
    )
    body = {"items": [{"product_id": created.json()["id"]}], "payment_token": "tok_declined"}
    headers = {**member, "Idempotency-Key": uuid.uuid4().hex}
    first = await client.post("/v1/checkout", json=body, headers=headers)
    declined = problem(first, 402, "payment-declined")
    assert declined["instance"] == "/v1/checkout"
    # A replay is the stored answer byte for byte: it names the request that produced it.
    again = await client.post("/v1/checkout", json=body, headers=headers)
    assert again.status_code == 402
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.json()["request_id"] == first.headers["x-request-id"]


FOREIGN_CURSORS = [
    "zz",
    base64.urlsafe_b64encode(b"[1, 2]").decode(),
    base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "x"]').decode(),
    base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "' + str(uuid.uuid4()).encode() + b'"]')
    .decode()
    .rstrip("="),  # a naive time
    "1733011200000000_" + str(uuid.uuid4()),  # a cursor of the old users listing
]


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/v1/products", "member"),
        ("/v1/orders", "member"),
        ("/v1/notifications", "member"),
        ("/v1/auth/users", "admin"),
    ],
)
async def test_every_list_refuses_a_cursor_it_did_not_issue_with_one_type(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    member: dict[str, str],
    path: str,
    who: str,
) -> None:
    headers = admin if who == "admin" else member
    for cursor in FOREIGN_CURSORS:
        response = await client.get(path, params={"cursor": cursor}, headers=headers)
        problem(response, 400, "invalid-cursor")


async def test_a_cursor_issued_by_one_list_pages_it(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    first = await client.get("/v1/auth/users", params={"limit": 1}, headers=admin)
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    second = await client.get(
        "/v1/auth/users", params={"limit": 1, "cursor": cursor}, headers=admin
    )
    assert second.status_code == 200, second.text
    assert second.json()["items"][0]["id"] != first.json()["items"][0]["id"]


@pytest.mark.parametrize("body", [b'{"name": ', b"\xff\xfe{}", b"not json"])
async def test_a_body_that_does_not_parse_is_one_type_on_every_route(
    client: httpx.AsyncClient, admin: dict[str, str], body: bytes
) -> None:
    json_headers = {"content-type": "application/json"}
    product = await client.post("/v1/products", content=body, headers={**admin, **json_headers})
    problem(product, 400, "malformed-body")
    signed = {SIGNATURE_HEADER: sign(WEBHOOK_SECRET, body), **json_headers}
    webhook = await client.post("/v1/payments/webhooks/provider", content=body, headers=signed)
    problem(webhook, 400, "malformed-body")


@pytest.mark.parametrize("currency", ["QQQ", "XRP", "EURO"])
async def test_a_currency_must_be_iso_4217_in_use(
    client: httpx.AsyncClient, admin: dict[str, str], currency: str
) -> None:
    body = {"name": "vase", "price_amount": 100, "currency": currency}
    refused = problem(
        await client.post("/v1/products", json=body, headers=admin), 422, "validation-error"
    )
    assert refused["errors"][0]["field"] == "currency"  # type: ignore[index]
    listed = await client.get("/v1/products", params={"currency": currency})
    problem(listed, 422, "validation-error")


async def test_a_currency_in_lower_case_is_stored_upper(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = {"name": "vase", "price_amount": 1500, "currency": "kwd"}
    created = await client.post("/v1/products", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["currency"] == "KWD"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/products/search", {"GET"}),
        ("POST", "/v1/products/search", {"GET"}),
        ("OPTIONS", f"/v1/products/{uuid.uuid4()}", {"DELETE", "GET", "PATCH"}),
        ("PUT", "/v1/products", {"GET", "POST"}),
    ],
)
async def test_allow_names_the_methods_of_the_resource(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)
    problem(response, 405, "method-not-allowed")
    assert set(response.headers["allow"].split(", ")) == allowed
