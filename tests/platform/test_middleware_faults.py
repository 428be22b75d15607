"""The platform's HTTP faults: a share of the modules' requests slowed or failed, probes spared."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.main import create_app
from app.platform import faults
from app.platform.middleware import SERVER_ERRORS, SLOW_RESPONSES
from tests.helpers import make_settings, serving
from tools.pgstack import Stack

HOLD = 2.0


@pytest.fixture(autouse=True)
def no_faults_left() -> Iterator[None]:
    faults.apply({})
    yield
    faults.apply({})


def test_both_are_declared_under_the_platform() -> None:
    assert {SLOW_RESPONSES.name, SERVER_ERRORS.name} <= set(faults.catalog())
    assert faults.switches() == {}


async def test_server_errors_fail_module_routes_and_spare_the_probes(migrated: Stack) -> None:
    async with serving(create_app(make_settings(migrated))) as client:
        assert (await client.get("/v1/products")).status_code == 200
        faults.apply({SERVER_ERRORS.name: 1.0})
        failed = await client.get("/v1/products")
        assert failed.status_code == 500
        assert failed.headers["content-type"].startswith("application/problem+json")
        assert failed.json()["detail"] == "injected fault"
        assert (await client.get("/healthz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'fault_active{name="platform.server_errors"} 1.0' in metrics
        assert 'route="/v1/products",status="500"' in metrics
        faults.apply({})
        assert (await client.get("/v1/products")).status_code == 200


async def test_slow_responses_hold_a_request_for_the_setting(migrated: Stack) -> None:
    settings = make_settings(migrated, faults_slow_response_seconds=HOLD)
    async with serving(create_app(settings)) as client:
        faults.apply({SLOW_RESPONSES.name: 1.0})
        started = time.perf_counter()
        resp = await client.get("/v1/products")
        held = time.perf_counter() - started
        assert resp.status_code == 200
        assert held >= HOLD
        started = time.perf_counter()
        assert (await client.get("/healthz")).status_code == 200
        probe = time.perf_counter() - started
        faults.apply({})
        # The probe was never held: well under the hold even on a busy machine's first call.
        assert probe < held


def test_a_ratio_hits_about_that_share() -> None:
    faults.apply({SERVER_ERRORS.name: 0.25})
    hits = sum(SERVER_ERRORS.hits() for _ in range(4000))
    assert 800 < hits < 1200
