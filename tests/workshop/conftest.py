"""The workshop's tests: a database of its own on the session's stack, migrated and seeded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from app.platform.db.migrations import alembic_config
from tests.helpers import replica_catch_up
from tools.pgstack import Stack
from workshop.__main__ import run_scenarios

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


class QuickRuns:
    """One quick run per scenario, made when a test first asks for it and kept for the session.

    A run per scenario (not one for all) keeps each under the suite's per-test timeout.
    """

    def __init__(self, stack: Stack, factory: pytest.TempPathFactory) -> None:
        self.stack, self.factory, self.runs = stack, factory, dict[str, Path]()

    def __call__(self, scenario: str) -> Path:
        if scenario not in self.runs:
            out = self.factory.mktemp(f"workshop-{scenario}")
            run_scenarios(self.stack, [scenario], out, rounds=5, quick=True, db=WORKSHOP_DB)
            self.runs[scenario] = out
        return self.runs[scenario]


@pytest.fixture(scope="session")
def quick_run(workshop_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> QuickRuns:
    return QuickRuns(workshop_stack, tmp_path_factory)


def scenario_outcome(runs: QuickRuns | Path, scenario: str) -> dict[str, Any]:
    out = runs(scenario) if isinstance(runs, QuickRuns) else runs
    results = json.loads((out / "results.json").read_text())
    found: dict[str, Any] = next(s for s in results["scenarios"] if s["scenario"] == scenario)
    return found


def comparison(outcome: dict[str, Any], key: str) -> dict[str, Any]:
    comparisons = outcome["comparisons"]
    assert isinstance(comparisons, list)
    found: dict[str, Any] = next(c for c in comparisons if c["figure"]["key"] == key)
    return found
