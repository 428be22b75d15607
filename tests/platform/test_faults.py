"""Faults: declared where they strike, switched across processes, refused in production."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from app.__main__ import app as cli
from app.main import create_app
from app.modules.notifications.rendering import RECEIPT_RENDER_FAILS, RENDERER
from app.platform import config, faults
from app.platform.config import Environment, Settings
from tests.helpers import make_settings, started, wait_for
from tools.pgstack import Stack

ROOT = Path(__file__).resolve().parents[2]
FAULT = RECEIPT_RENDER_FAILS.name


@pytest.fixture(autouse=True)
def no_faults_left() -> Iterator[None]:
    faults.apply({})
    yield
    faults.apply({})


@pytest.fixture
async def switched_off(settings: Settings) -> AsyncIterator[None]:
    yield
    engine = create_async_engine(str(settings.database_url))
    async with engine.begin() as conn:
        await faults.switch_off(conn)
    await engine.dispose()


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_DATABASE_URL": stack.primary_url,
        "APP_REPLICA_DATABASE_URL": stack.replica_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "app", "fault", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value("fault_active", {"name": name})


async def test_a_switch_from_another_process_reaches_a_running_app(
    migrated: Stack, switched_off: None
) -> None:
    app: FastAPI = create_app(make_settings(migrated, faults_refresh_seconds=0.1))
    async with started(app):
        assert not RECEIPT_RENDER_FAILS.hits()
        on = await asyncio.to_thread(_cli, migrated, "on", FAULT, "--ratio", "0.5")
        assert on.returncode == 0, on.stderr
        await wait_for(lambda: _async(RECEIPT_RENDER_FAILS.ratio() == 0.5), timeout=30)
        assert _gauge(FAULT) == 0.5

        listed = await asyncio.to_thread(_cli, migrated, "list")
        assert listed.returncode == 0, listed.stderr
        line = next(row for row in listed.stdout.splitlines() if row.startswith(FAULT))
        assert "0.50" in line

        off = await asyncio.to_thread(_cli, migrated, "off", FAULT)
        assert off.returncode == 0, off.stderr
        assert "switched off 1 fault" in off.stdout
        await wait_for(lambda: _async(RECEIPT_RENDER_FAILS.ratio() == 0.0), timeout=30)
        assert _gauge(FAULT) == 0.0
        assert not RECEIPT_RENDER_FAILS.hits()


async def _async(value: bool) -> bool:
    return value


def test_the_cli_refuses_unknown_faults_and_bad_ratios(migrated: Stack) -> None:
    unknown = _cli(migrated, "on", "no.such_fault")
    assert unknown.returncode == 2
    assert "no fault is declared as 'no.such_fault'" in unknown.stderr
    assert FAULT in unknown.stderr  # it says which faults exist
    too_big = _cli(migrated, "on", FAULT, "--ratio", "1.5")
    assert too_big.returncode == 2


@pytest.mark.parametrize("env", ["staging", "production"])
def test_faults_are_refused_outside_development_test_and_workshop(
    env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validation is skipped: the refusal must not depend on the rest of a production config.
    deployed = Settings.model_construct(env=env)
    monkeypatch.setattr(config, "get_settings", lambda: deployed)
    result = CliRunner().invoke(cli, ["fault", "on", FAULT])
    assert result.exit_code == 2
    assert f"faults are refused with APP_ENV={env}" in result.output
    assert faults.start_refresh(deployed) is None  # no process there ever reads the switches
    with pytest.raises(faults.FaultsRefused):
        faults.check_allowed(env)
    for allowed in ("development", "test", "workshop"):
        faults.check_allowed(allowed)


def test_a_keyed_fault_hits_a_stable_slice_of_the_keys() -> None:
    faults.apply({FAULT: 0.08})
    keys = [f"user-{n}" for n in range(20_000)]
    hit = [key for key in keys if RECEIPT_RENDER_FAILS.hits(key)]
    assert 0.07 < len(hit) / len(keys) < 0.09
    # The same keys every time (a user either has the bug or has not).
    assert hit == [key for key in keys if RECEIPT_RENDER_FAILS.hits(key)]
    faults.apply({FAULT: 1.0})
    assert all(RECEIPT_RENDER_FAILS.hits(key) for key in keys[:100])
    faults.apply({})
    assert not any(RECEIPT_RENDER_FAILS.hits(key) for key in keys[:100])


def test_the_receipt_fault_breaks_only_the_receipt() -> None:
    context = {
        "order_id": "o-1",
        "total": "15.00 EUR",
        "items": "1 x Widget",
    }
    faults.apply({FAULT: 1.0})
    with pytest.raises(RuntimeError, match="injected fault"):
        RENDERER.render("order_receipt", context)
    assert RENDERER.render("welcome", {"name": "Ada"}).subject
