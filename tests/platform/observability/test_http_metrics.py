"""HTTP RED metrics: exact samples per module, route template, method and status."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.main import create_app
from app.platform.config import Settings
from app.platform.web.security import CurrentPrincipal
from tests.helpers import serving
from tests.platform.observability.samples import changes, key, snapshot

HTTP = ("http_requests_total", "http_request_duration_seconds_count", "http_requests_in_progress")
PAYMENTS_ROUTER = "app.modules.payments.router"


def _owned_by(module: str, *functions: Any) -> None:
    # The probes stand in for a module's endpoints: the owner comes from where they are defined.
    for function in functions:
        function.__module__ = module


def probe_router() -> APIRouter:
    router = APIRouter()

    async def ok(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    async def private(principal: CurrentPrincipal) -> dict[str, str]:
        return {"user": str(principal.user_id)}

    async def crash() -> None:
        raise RuntimeError("planted failure")

    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    _owned_by(PAYMENTS_ROUTER, ok, private, crash, echo)
    router.add_api_route("/v1/items/{item_id}", ok, methods=["GET"])
    router.add_api_route("/v1/private", private, methods=["GET"])
    router.add_api_route("/v1/crash", crash, methods=["GET"])
    router.add_api_route("/v1/echo", echo, methods=["POST"])
    return router


@pytest.fixture
async def probed(app: FastAPI) -> FastAPI:
    app.include_router(probe_router())
    return app


def _requests(route: str, method: str, status: int, module: str = "payments") -> Any:
    return key("http_requests_total", module=module, route=route, method=method, status=str(status))


def _timed(route: str, method: str, module: str = "payments") -> Any:
    return key("http_request_duration_seconds_count", module=module, route=route, method=method)


async def test_exact_samples_after_a_known_set_of_requests(
    probed: FastAPI, client: httpx.AsyncClient
) -> None:
    before = snapshot(HTTP)

    assert (await client.get("/v1/items/7")).status_code == 200
    assert (await client.get("/v1/items/8")).status_code == 200
    assert (await client.get("/no/such/path/123")).status_code == 404
    assert (await client.get("/v1/private")).status_code == 401  # raised by a dependency
    assert (await client.get("/v1/items/not-a-number")).status_code == 422
    crashed = await client.get("/v1/crash")
    assert crashed.status_code == 500
    assert crashed.headers["content-type"] == "application/problem+json"
    assert (await client.get("/healthz")).status_code == 200

    assert changes(before, snapshot(HTTP)) == {
        _requests("/v1/items/{item_id}", "GET", 200): 2,
        _requests("/v1/items/{item_id}", "GET", 422): 1,
        _timed("/v1/items/{item_id}", "GET"): 3,
        _requests("<unmatched>", "GET", 404, "platform"): 1,
        _timed("<unmatched>", "GET", "platform"): 1,
        _requests("/v1/private", "GET", 401): 1,
        _timed("/v1/private", "GET"): 1,
        _requests("/v1/crash", "GET", 500): 1,
        _timed("/v1/crash", "GET"): 1,
        _requests("/healthz", "GET", 200, "platform"): 1,
        _timed("/healthz", "GET", "platform"): 1,
    }
    # Nothing is left in progress once the responses are out.
    after = snapshot(("http_requests_in_progress",))
    assert all(v == 0 for v in after.values()), after


class TooManyRequests:
    """A stand-in rate limiter: a middleware that answers before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/items/"):
            await JSONResponse({"detail": "slow down"}, status_code=429)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def test_a_status_from_a_middleware_keeps_its_route(
    probed: FastAPI, client: httpx.AsyncClient
) -> None:
    probed.user_middleware.append(Middleware(TooManyRequests))  # innermost, like a rate limiter
    before = snapshot(HTTP)
    assert (await client.get("/v1/items/1")).status_code == 429
    assert changes(before, snapshot(HTTP)) == {
        _requests("/v1/items/{item_id}", "GET", 429): 1,
        _timed("/v1/items/{item_id}", "GET"): 1,
    }


async def test_wrong_method_and_nonstandard_methods(
    probed: FastAPI, client: httpx.AsyncClient
) -> None:
    before = snapshot(HTTP)
    assert (await client.delete("/v1/items/1")).status_code == 405
    assert (await client.request("PURGE", "/v1/items/1")).status_code == 405
    assert (await client.request("BREW", "/nowhere")).status_code == 404
    assert changes(before, snapshot(HTTP)) == {
        _requests("/v1/items/{item_id}", "DELETE", 405): 1,
        _timed("/v1/items/{item_id}", "DELETE"): 1,
        _requests("/v1/items/{item_id}", "OTHER", 405): 1,
        _timed("/v1/items/{item_id}", "OTHER"): 1,
        _requests("<unmatched>", "OTHER", 404, "platform"): 1,
        _timed("<unmatched>", "OTHER", "platform"): 1,
    }


async def test_a_client_that_disconnects_is_recorded_as_499(probed: FastAPI) -> None:
    before = snapshot(HTTP)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}  # gone before its body arrived

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/echo",
        "raw_path": b"/v1/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-length", b"10")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    await probed(scope, receive, send)
    assert changes(before, snapshot(HTTP)) == {
        _requests("/v1/echo", "POST", 499): 1,
        _timed("/v1/echo", "POST"): 1,
    }


async def test_in_progress_counts_requests_being_handled(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow() -> dict[str, bool]:
        entered.set()
        await release.wait()
        return {"done": True}

    _owned_by("app.modules.analytics.router", slow)
    app.add_api_route("/v1/slow", slow, methods=["GET"])
    gauge = key("http_requests_in_progress", module="analytics", route="/v1/slow")
    pending = asyncio.ensure_future(client.get("/v1/slow"))
    await entered.wait()
    assert snapshot(("http_requests_in_progress",))[gauge] == 1
    release.set()
    assert (await pending).status_code == 200
    assert snapshot(("http_requests_in_progress",))[gauge] == 0


async def test_access_log_line_per_request(
    probed: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.access")
    await client.get("/v1/items/5", headers={"X-Request-ID": "access-1"})
    await client.get("/v1/crash", headers={"X-Request-ID": "access-2"})
    lines = [r.msg for r in caplog.records if r.name == "app.access"]
    assert len(lines) == 2
    first, second = lines
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert {k: first[k] for k in ("event", "request_id", "module", "route", "status")} == {
        "event": "request",
        "request_id": "access-1",
        "module": "payments",
        "route": "/v1/items/{item_id}",
        "status": 200,
    }
    assert first["db_queries"] == 0
    assert first["duration_ms"] > 0
    assert (second["request_id"], second["status"]) == ("access-2", 500)


async def test_with_metrics_off_nothing_is_recorded_and_nothing_else_changes(
    settings: Settings,
) -> None:
    """``APP_HTTP_METRICS=false``: the baseline of ``make bench-http``, the same platform layer."""
    application = create_app(
        settings.model_copy(update={"http_metrics": False, "access_log": False})
    )
    application.include_router(probe_router())
    before = snapshot((*HTTP, "http_request_db_queries"))
    async with serving(application) as c:
        ok = await c.get("/v1/items/3", headers={"X-Request-ID": "off-1"})
        crashed = await c.get("/v1/crash", headers={"X-Request-ID": "off-2"})
        missing = await c.get("/no/such/path")
        too_large = await c.post("/v1/echo", content=b"x" * (settings.max_body_bytes + 1))
    assert (ok.status_code, ok.headers["x-request-id"]) == (200, "off-1")
    assert crashed.status_code == 500
    assert crashed.json()["request_id"] == "off-2"
    assert missing.status_code == 404
    assert too_large.status_code == 413
    assert too_large.headers["content-type"] == "application/problem+json"
    assert changes(before, snapshot((*HTTP, "http_request_db_queries"))) == {}
