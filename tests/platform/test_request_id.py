from __future__ import annotations

import re

import httpx


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
