"""The workshop is also a test: every scenario's quick run shows its claim, in its direction."""

from __future__ import annotations

import json

import pytest

from tests.workshop.conftest import QuickRuns, comparison, scenario_outcome
from workshop.scenarios import SCENARIOS

# quick_run (conftest.py): one quick run of every scenario for the whole session.
_outcome = scenario_outcome
_comparison = comparison


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenario_ran_and_its_claims_held(quick_run: QuickRuns, scenario: str) -> None:
    out = quick_run(scenario)
    results = json.loads((out / "results.json").read_text())
    [ran] = results["scenarios"]
    assert ran["scenario"] == scenario
    assert ran["passed"] is True, ran["checks"]
    assert ran["rounds"] == 5
    report = (out / "report.md").read_text()
    assert f"## {scenario}: {ran['title']}" in report
    assert (out / f"{scenario}.png").stat().st_size > 1000
    assert "load average" in report


def test_a_the_outbox_keeps_checkout_up_through_a_notification_bug(quick_run: QuickRuns) -> None:
    a = _outcome(quick_run, "A")
    success = _comparison(a, "success")
    assert success["before"]["median"] < 100  # the coupled checkout fails with the bug on
    assert min(success["after"]["values"]) == 100  # the outbox checkout never does
    facts = a["facts"]
    assert isinstance(facts, dict)
    assert facts["outbox_5xx"] == 0
    assert facts["receipts_delivered"] == facts["orders_paid"] > 0  # each receipt, once
    assert "Modules are independent" in facts["lint_imports_on_the_coupled_code"]


def test_f_reads_on_the_replica_halve_the_primarys_share(quick_run: QuickRuns) -> None:
    f = _outcome(quick_run, "F")
    share = _comparison(f, "primary_statements")
    assert share["before"]["median"] > 90  # routing off: the primary runs nearly everything
    assert share["ratio"] <= 0.5
    assert len(share["before"]["values"]) == 5  # every round kept
    facts = f["facts"]
    assert isinstance(facts, dict)
    assert facts["server_errors"] == 0
