from __future__ import annotations

import json
import re

import httpx
import pytest
import structlog
from fastapi import FastAPI, Response

from app.main import create_app
from app.platform.config import Settings
from tests.helpers import serving


async def test_sane_incoming_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123.def:ghi"})
    assert resp.headers["x-request-id"] == "abc-123.def:ghi"


async def test_insane_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    for bad in ("x" * 200, "has space", "new\\nline", "<script>"):
        resp = await client.get("/healthz", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"]), bad


async def test_request_id_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = (await client.get("/healthz")).headers["x-request-id"]
    second = (await client.get("/healthz")).headers["x-request-id"]
    assert first != second


def _logging_app(settings: Settings) -> FastAPI:
    application = create_app(settings)

    @application.get("/v1/logs-a-line")
    async def logs_a_line() -> dict[str, bool]:
        structlog.stdlib.get_logger("probe").info("inside the handler")
        return {"logged": True}

    return application


@pytest.mark.parametrize("observed", [True, False], ids=["metrics on", "metrics and access off"])
async def test_every_line_written_for_a_request_carries_its_id(
    settings: Settings, capsys: pytest.CaptureFixture[str], observed: bool
) -> None:
    overrides = {"http_metrics": observed, "access_log": observed, "log_json": True}
    application = _logging_app(settings.model_copy(update=overrides))
    async with serving(application) as c:
        resp = await c.get("/v1/logs-a-line", headers={"X-Request-ID": "line-1"})
        assert resp.headers["x-request-id"] == "line-1"
        generated = (await c.get("/v1/logs-a-line")).headers["x-request-id"]
    structlog.stdlib.get_logger("probe").info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    probe = [line for line in lines if line["logger"] == "probe"]
    assert [line.get("request_id") for line in probe] == ["line-1", generated, None]


async def test_the_platform_id_replaces_one_a_handler_set(settings: Settings) -> None:
    application = create_app(settings)

    @application.get("/v1/sets-its-own-id")
    async def sets_its_own_id(response: Response) -> dict[str, bool]:
        response.headers["X-Request-ID"] = "from-the-handler"
        return {"ok": True}

    async with serving(application) as c:
        resp = await c.get("/v1/sets-its-own-id", headers={"X-Request-ID": "platform-1"})
    assert resp.headers.get_list("x-request-id") == ["platform-1"]
