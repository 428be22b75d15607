"""The server process: ready against the real primary and replica, stops cleanly on Ctrl-C."""

from __future__ import annotations

import json

import httpx

from tests.e2e.conftest import Server, stop_server


def test_serves_ready_and_stops_on_sigint(server: Server) -> None:
    resp = httpx.get(server.base_url + "/readyz", headers={"X-Request-ID": "e2e-ready-1"})
    assert resp.status_code == 200, resp.text
    checks = resp.json()["checks"]
    assert checks["primary"]["status"] == "up"
    assert checks["replica"]["status"] == "up"

    docs = httpx.get(server.base_url + "/openapi.json")
    assert docs.status_code == 200
    assert "/readyz" in docs.json()["paths"]

    missing = httpx.get(server.base_url + "/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"

    assert stop_server(server) == 0
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "shutdown" for line in lines), server.output()
    assert any(line.get("request_id") == "e2e-ready-1" for line in lines), server.output()
    # One access line per request, the platform's (with its route), not uvicorn's as well.
    access = [line for line in lines if line.get("request_id") == "e2e-ready-1"]
    assert [line.get("logger") for line in access].count("app.access") == 1, access
    assert not [line for line in lines if line.get("logger") == "uvicorn.access"], server.output()
