"""The Prometheus rules: valid, unit-tested by promtool, and every alert says what to do."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import require_tool
from tests.monitoring.stack import (
    MODULES,
    REPO,
    RULE_TESTS_DIR,
    RUNBOOKS_DIR,
    SEVERITIES,
    alerting_rules,
    recording_rules,
    rule_files,
    rule_test_files,
)

HINT = "Debian/Ubuntu: apt-get install prometheus"
# level:metric:operations, https://prometheus.io/docs/practices/rules/
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")
RUNBOOK_SECTIONS = ("## What it means", "## What to check", "## What to do")


def _promtool(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool", HINT)
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=timeout, cwd=RULE_TESTS_DIR
    )


def _rule_tests() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text("utf-8")) for path in rule_test_files()]


def _alert_tests() -> list[dict[str, Any]]:
    return [
        case
        for suite in _rule_tests()
        for group in suite["tests"]
        for case in group.get("alert_rule_test", [])
    ]


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(test_file: Path) -> None:
    result = _promtool("test", "rules", test_file.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_file_has_its_unit_tests() -> None:
    tested = {
        (RULE_TESTS_DIR / rule_file).resolve()
        for suite in _rule_tests()
        for rule_file in suite["rule_files"]
    }
    untested = [p.name for p in rule_files() if p.resolve() not in tested]
    assert not untested, f"rule files no prometheus/tests/*_test.yml loads: {untested}"


def test_recording_rules_are_named_level_metric_operations() -> None:
    bad = [r["record"] for r in recording_rules() if not RECORD_NAME.match(r["record"])]
    assert not bad, f"not level:metric:operations: {bad}"


def test_every_recording_rule_has_an_expression_test() -> None:
    exprs = [
        case["expr"]
        for suite in _rule_tests()
        for group in suite["tests"]
        for case in group.get("promql_expr_test", [])
    ]
    names = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
    evaluated = {token for expr in exprs for token in names.findall(expr)}
    missing = [r["record"] for r in recording_rules() if r["record"] not in evaluated]
    assert not missing, f"recording rules without a promql_expr_test: {missing}"


@pytest.mark.parametrize("name", sorted({r["alert"] for r in alerting_rules()}))
def test_every_alert_fires_in_one_case_and_stays_silent_in_another(name: str) -> None:
    cases = [case for case in _alert_tests() if case["alertname"] == name]
    firing = [alert for case in cases for alert in case.get("exp_alerts") or []]
    assert firing, f"{name}: no alert_rule_test where it fires"
    assert any(not case.get("exp_alerts") for case in cases), f"{name}: never tested silent"
    for alert in firing:
        labels, annotations = alert["exp_labels"], alert.get("exp_annotations", {})
        assert labels.get("severity") in SEVERITIES, f"{name}: severity {labels.get('severity')}"
        assert labels.get("module") in MODULES, f"{name}: module {labels.get('module')}"
        assert {"summary", "description", "runbook_url"} <= annotations.keys(), (
            f"{name}: the test does not check the rendered annotations"
        )


@pytest.mark.parametrize(
    "rule", alerting_rules(), ids=lambda r: f"{r['alert']}-{r.get('labels', {}).get('window', '')}"
)
def test_every_alert_has_severity_module_and_actionable_annotations(rule: dict[str, Any]) -> None:
    name, labels, annotations = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
    assert labels.get("severity") in SEVERITIES
    # A module either fixed by the rule or carried by the series the expression aggregates.
    assert labels.get("module") in MODULES or re.search(r"\bmodule\b", rule["expr"]), name
    assert {"summary", "description", "runbook_url"} <= annotations.keys()
    description = annotations["description"]
    assert "$value" in description, f"{name}: the description does not give the current value"
    assert "threshold" in description, f"{name}: the description does not give the threshold"
    assert re.search(r"last|over the", description), f"{name}: the description names no window"
    assert annotations["runbook_url"] == f"docs/runbooks/{name}.md"


@pytest.mark.parametrize("name", sorted({r["alert"] for r in alerting_rules()}))
def test_every_runbook_url_exists_and_says_what_to_do(name: str) -> None:
    (url,) = {r["annotations"]["runbook_url"] for r in alerting_rules() if r["alert"] == name}
    path = REPO / url
    assert path.is_file(), f"{url} is missing"
    assert path.parent == RUNBOOKS_DIR
    text = path.read_text("utf-8")
    assert text.startswith(f"# {name}\n"), f"{url} is not the runbook of {name}"
    for section in RUNBOOK_SECTIONS:
        assert section in text, f"{url} has no '{section}' section"
