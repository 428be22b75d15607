"""Every failure a client can cause comes back as application/problem+json with a 4xx status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from app.main import create_app
from app.platform.config import Settings
from app.platform.errors import Conflict, TooManyRequests
from tests.helpers import serving

PROBLEM = "application/problem+json"


class Widget(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    quantity: int = Field(ge=1)


def _test_router() -> APIRouter:
    router = APIRouter(prefix="/_test")

    @router.post("/widgets", status_code=201)
    async def create_widget(widget: Widget) -> Widget:
        return widget

    @router.get("/conflict")
    async def conflict() -> None:
        raise Conflict("the widget is being edited", widget_id="w1")

    @router.get("/limited")
    async def limited() -> None:
        raise TooManyRequests("slow down", retry_after=7)

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internal detail")

    return router


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings.model_copy(update={"max_body_bytes": 1024}))
    app.include_router(_test_router())
    async with serving(app) as c:
        yield c


def assert_problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["type"] == f"/problems/{slug}"
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


async def test_valid_body_is_accepted(client: httpx.AsyncClient) -> None:
    resp = await client.post("/_test/widgets", json={"name": "bolt", "quantity": 3})
    assert resp.status_code == 201
    assert resp.json() == {"name": "bolt", "quantity": 3}


async def test_malformed_json_body(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/_test/widgets", content=b'{"name": "bolt", ', headers={"content-type": "application/json"}
    )
    body = assert_problem(resp, 400, "malformed-body")
    assert "not valid JSON" in body["detail"]
    assert body["instance"] == "/_test/widgets"


async def test_schema_violation_names_every_field(client: httpx.AsyncClient) -> None:
    resp = await client.post("/_test/widgets", json={"name": "", "quantity": 0})
    body = assert_problem(resp, 422, "validation-error")
    fields = {e["field"]: e for e in body["errors"]}
    assert set(fields) == {"name", "quantity"}
    assert fields["quantity"]["type"] == "greater_than_equal"
    assert fields["name"]["loc"] == ["body", "name"]


async def test_missing_body(client: httpx.AsyncClient) -> None:
    resp = await client.post("/_test/widgets")
    body = assert_problem(resp, 422, "validation-error")
    assert body["errors"][0]["type"] == "missing"


async def test_unknown_route(client: httpx.AsyncClient) -> None:
    resp = await client.get("/no/such/thing")
    body = assert_problem(resp, 404, "not-found")
    assert body["detail"] == "No route matches GET /no/such/thing"


async def test_wrong_method(client: httpx.AsyncClient) -> None:
    resp = await client.delete("/_test/widgets")
    assert_problem(resp, 405, "method-not-allowed")
    assert "POST" in resp.headers["allow"]


async def test_oversized_body_by_content_length(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/_test/widgets", content=b"x" * 2048, headers={"content-type": "application/json"}
    )
    body = assert_problem(resp, 413, "payload-too-large")
    assert "1024 bytes" in body["detail"]


async def test_oversized_body_streamed_without_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 256

    resp = await client.post(
        "/_test/widgets", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in resp.request.headers
    assert_problem(resp, 413, "payload-too-large")


async def test_app_error_extensions_and_headers(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/_test/conflict"), 409, "conflict")
    assert body["widget_id"] == "w1"
    assert body["detail"] == "the widget is being edited"
    resp = await client.get("/_test/limited")
    assert_problem(resp, 429, "too-many-requests")
    assert resp.headers["retry-after"] == "7"


async def test_crash_is_500_problem_without_internals(client: httpx.AsyncClient) -> None:
    resp = await client.get("/_test/crash")
    body = assert_problem(resp, 500, "internal-error")
    assert "secret internal detail" not in resp.text
    assert "Traceback" not in resp.text
    assert body["detail"] == "Internal server error"
