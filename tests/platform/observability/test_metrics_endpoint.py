"""/metrics: text or OpenMetrics by Accept, valid for promtool, token-guarded outside dev."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.helpers import make_settings, require_tool, serving
from tests.platform.observability.samples import value
from tools.pgstack import Stack

TOKEN = "t" * 40


async def test_text_exposition_by_default(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE http_requests_total counter" in resp.text
    assert 'http_requests_total{method="GET",module="platform",route="/healthz",status="200"}' in (
        resp.text
    )


async def test_openmetrics_by_content_negotiation(client: httpx.AsyncClient) -> None:
    resp = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert resp.text.endswith("# EOF\n")
    assert "# TYPE http_requests counter" in resp.text


async def test_the_scrape_is_owned_by_the_platform(client: httpx.AsyncClient) -> None:
    labels = {"module": "platform", "route": "/metrics", "method": "GET", "status": "200"}
    before = value("http_requests_total", **labels)
    await client.get("/metrics")
    assert value("http_requests_total", **labels) == before + 1


async def test_promtool_accepts_the_scraped_output(client: httpx.AsyncClient) -> None:
    promtool = require_tool("promtool", "Debian/Ubuntu: apt-get install prometheus")
    # Traffic first, so every family of the platform has samples to check.
    for path in ("/healthz", "/readyz", "/nowhere"):
        await client.get(path)
    scraped = (await client.get("/metrics")).text
    assert "db_query_duration_seconds_bucket" in scraped
    result = subprocess.run(  # noqa: ASYNC221 - a short local check, nothing else is running
        [promtool, "check", "metrics"], input=scraped, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
async def production_client(migrated: Stack) -> AsyncIterator[httpx.AsyncClient]:
    # Staging behaves as production does here; production itself also refuses the fake provider.
    settings = make_settings(
        migrated,
        env="staging",
        secret_key="s" * 40,
        metrics_token=TOKEN,
        payments_webhook_secret="w" * 40,
        payments_allow_fake_provider=True,
        email_backend="smtp",
        public_base_url="https://shop.example.com",
    )
    application: FastAPI = create_app(settings)
    async with serving(application) as c:
        yield c


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", TOKEN, "Bearer"],
)
async def test_refused_without_the_token_outside_development(
    production_client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    resp = await production_client.get("/metrics", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"] == "Bearer"
    assert "http_requests_total" not in resp.text


async def test_served_with_the_token_outside_development(
    production_client: httpx.AsyncClient,
) -> None:
    resp = await production_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200
    assert "http_requests_total" in resp.text
