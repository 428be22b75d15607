"""The workshop's tests: a database of its own on the session's stack, migrated and seeded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command

from app.platform.db.migrations import alembic_config
from tests.helpers import replica_catch_up
from tools.pgstack import Stack
from workshop.__main__ import run_scenarios
from workshop.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
WORKSHOP_DB = "workshop"


@pytest.fixture(scope="session")
def workshop_stack(migrated: Stack) -> Stack:
    stack = migrated
    stack.primary.psql(f"DROP DATABASE IF EXISTS {WORKSHOP_DB}")
    stack.primary.psql(f"CREATE DATABASE {WORKSHOP_DB} OWNER app")
    stack.primary.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", db=WORKSHOP_DB)
    url = stack.url(stack.primary_port, db=WORKSHOP_DB)
    command.upgrade(alembic_config(url), "head")
    subprocess.run(
        [sys.executable, "-m", "app", "seed", "--preset", "small", "--seed", "1"],
        cwd=ROOT,
        env={**os.environ, "APP_ENV": "test", "APP_DATABASE_URL": url},
        check=True,
        capture_output=True,
        timeout=600,
    )
    replica_catch_up(stack, timeout=120)
    return stack


@pytest.fixture(scope="session")
def quick_run(workshop_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every scenario's quick run, once for all the workshop's test files."""
    out = tmp_path_factory.mktemp("workshop")
    run_scenarios(workshop_stack, list(SCENARIOS), out, rounds=5, quick=True, db=WORKSHOP_DB)
    return out
