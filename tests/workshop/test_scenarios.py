"""The workshop is also a test: every scenario's quick run shows its claim, in its direction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workshop.scenarios import SCENARIOS

# The first test to ask for the session's quick run (every scenario) bears its setup: minutes on a
# loaded machine, so the hang guard is wider than the suite's 300 s.
pytestmark = pytest.mark.timeout(1200)


def _outcome(out: Path, scenario: str) -> dict[str, Any]:
    results = json.loads((out / "results.json").read_text())
    return next(s for s in results["scenarios"] if s["scenario"] == scenario)


def _comparison(outcome: dict[str, Any], key: str) -> dict[str, Any]:
    comparisons = outcome["comparisons"]
    assert isinstance(comparisons, list)
    return next(c for c in comparisons if c["figure"]["key"] == key)


def test_every_scenario_ran_and_its_claims_held(quick_run: Path) -> None:
    results = json.loads((quick_run / "results.json").read_text())
    assert [s["scenario"] for s in results["scenarios"]] == list(SCENARIOS)
    for scenario in results["scenarios"]:
        assert scenario["passed"] is True, scenario["checks"]
        assert scenario["rounds"] == 5
        report = (quick_run / "report.md").read_text()
        assert f"## {scenario['scenario']}: {scenario['title']}" in report
        assert (quick_run / f"{scenario['scenario']}.png").stat().st_size > 1000
    assert "load average" in (quick_run / "report.md").read_text()


def test_a_the_outbox_keeps_checkout_up_through_a_notification_bug(quick_run: Path) -> None:
    a = _outcome(quick_run, "A")
    success = _comparison(a, "success")
    assert success["before"]["median"] < 100  # the coupled checkout fails with the bug on
    assert min(success["after"]["values"]) == 100  # the outbox checkout never does
    facts = a["facts"]
    assert isinstance(facts, dict)
    assert facts["outbox_5xx"] == 0
    assert facts["receipts_delivered"] == facts["orders_paid"] > 0  # each receipt, once
    assert "Modules are independent" in facts["lint_imports_on_the_coupled_code"]


def test_f_reads_on_the_replica_halve_the_primarys_share(quick_run: Path) -> None:
    f = _outcome(quick_run, "F")
    share = _comparison(f, "primary_statements")
    assert share["before"]["median"] > 90  # routing off: the primary runs nearly everything
    assert share["ratio"] <= 0.5
    assert len(share["before"]["values"]) == 5  # every round kept
    facts = f["facts"]
    assert isinstance(facts, dict)
    assert facts["server_errors"] == 0
