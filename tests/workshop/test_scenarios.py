"""The workshop is also a test: each scenario's quick run shows its claim, in its direction."""

from __future__ import annotations

import json
from pathlib import Path

from tests.workshop.conftest import WORKSHOP_DB
from tools.pgstack import Stack
from workshop.__main__ import run_scenarios


def test_reads_on_the_replica_halve_the_primarys_share(
    workshop_stack: Stack, tmp_path: Path
) -> None:
    (outcome,) = run_scenarios(
        workshop_stack, ["F"], tmp_path, rounds=5, quick=True, db=WORKSHOP_DB
    )
    share = outcome.comparison("primary_statements")
    assert share.before.median > 90, share  # routing off: the primary runs nearly everything
    assert share.ratio <= 0.5, share
    assert outcome.facts["server_errors"] == 0
    assert outcome.passed, outcome.checks

    results = json.loads((tmp_path / "results.json").read_text())
    (saved,) = results["scenarios"]
    assert saved["scenario"] == "F"
    assert saved["passed"] is True
    assert len(saved["comparisons"][0]["before"]["values"]) == 5  # every round kept
    report = (tmp_path / "report.md").read_text()
    assert "## F: Reads on the replica" in report
    assert (tmp_path / "F.png").stat().st_size > 1000
