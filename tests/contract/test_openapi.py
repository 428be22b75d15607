"""The OpenAPI document states what the server does when it refuses, not only when it agrees."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from app.main import create_app
from app.platform.config import Settings

PROBLEM = "application/problem+json"
METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document(settings: Settings) -> dict[str, Any]:
    app: FastAPI = create_app(settings)
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def statuses(document: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(s) for s in document["paths"][path][method]["responses"]}


def test_every_refusal_is_documented_as_a_problem(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, method, operation in operations(document):
        responses = operation["responses"]
        assert "422" in responses, (method, path)  # a NUL anywhere in the query string
        for status, response in responses.items():
            if int(status) >= 400:
                content = response["content"]
                assert list(content) == [PROBLEM], (method, path, status)
                assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert response["headers"]["X-Request-ID"]["required"] is True


def test_statuses_follow_what_a_route_uses(document: dict[str, Any]) -> None:
    # A body: undecodable, too large, invalid.
    assert {400, 413, 422} <= statuses(document, "post", "/v1/products")
    # An access token: 401; a role: 403; a looked-up resource: 404.
    assert {401, 403, 404} <= statuses(document, "patch", "/v1/products/{product_id}")
    assert {401, 404} <= statuses(document, "get", "/v1/orders/{order_id}")
    assert 403 not in statuses(document, "get", "/v1/orders/{order_id}")
    # A page cursor: 400; an idempotency key: 400; the route's own: 402, 409, 502, 504.
    assert 400 in statuses(document, "get", "/v1/notifications")
    assert {400, 402, 409, 502, 504} <= statuses(document, "post", "/v1/checkout")
    assert {429} <= statuses(document, "post", "/v1/auth/login")
    assert statuses(document, "get", "/healthz") == {200, 422}
    unauthorized = document["paths"]["/v1/orders"]["get"]["responses"]["401"]
    assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True
    limited = document["paths"]["/v1/auth/login"]["post"]["responses"]["429"]
    assert limited["headers"]["Retry-After"]["required"] is True


@pytest.mark.parametrize(
    ("method", "path", "header"),
    [
        ("post", "/v1/checkout", "Idempotency-Key"),
        ("post", "/v1/orders/{order_id}/refund", "Idempotency-Key"),
        ("post", "/v1/payments/webhooks/provider", "Provider-Signature"),
    ],
)
def test_headers_the_server_insists_on_are_required(
    document: dict[str, Any], method: str, path: str, header: str
) -> None:
    [parameter] = [p for p in document["paths"][path][method]["parameters"] if p["name"] == header]
    assert parameter["in"] == "header"
    assert parameter["required"] is True
    assert parameter["schema"]["type"] == "string"
    assert "x-platform-required" not in parameter["schema"]


def test_security_matches_who_may_call(document: dict[str, Any]) -> None:
    bearer: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
    anyone_or_bearer: list[dict[str, list[str]]] = [{}, {"HTTPBearer": []}]
    paths = document["paths"]
    assert paths["/v1/products"]["get"]["security"] == anyone_or_bearer
    assert paths["/v1/products/{product_id}"]["get"]["security"] == anyone_or_bearer
    assert paths["/v1/analytics/events"]["post"]["security"] == anyone_or_bearer
    assert paths["/v1/orders"]["get"]["security"] == bearer
    assert paths["/v1/products"]["post"]["security"] == bearer
    assert "security" not in paths["/v1/products/search"]["get"]
    assert "security" not in paths["/v1/auth/login"]["post"]


def _integers(schema: Any, components: dict[str, Any], where: str) -> Iterator[tuple[str, Any]]:
    """Every integer schema reachable from ``schema`` (through $refs), with where it is."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            yield from _integers(components[name], components, f"{where}->{name}")
            return
        if schema.get("type") == "integer":
            yield where, schema
        for key, value in schema.items():
            yield from _integers(value, components, f"{where}.{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _integers(value, components, f"{where}[{index}]")


def test_every_integer_a_client_sends_is_bounded_by_a_bigint(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    found = []
    for path, method, operation in operations(document):
        inputs = [p["schema"] for p in operation.get("parameters", ())]
        body = operation.get("requestBody", {}).get("content", {})
        inputs += [media["schema"] for media in body.values()]
        for schema in inputs:
            found += list(_integers(schema, components, f"{method} {path}"))
    assert len(found) > 10  # limits, prices, quantities, amounts, positions...
    for where, schema in found:
        assert -(2**63) <= schema.get("minimum", -(2**64)) <= schema.get("maximum", 2**64), where
        assert schema.get("maximum", 2**64) <= 2**63 - 1, where
