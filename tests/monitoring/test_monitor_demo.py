"""`make monitor DEMO=1`: fast scrapes, scaled-down copies of the rules, the shipped ones kept."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.helpers import require_tool
from tools import demo_rules, monitor


def _rules(folder: Path) -> dict[str, dict[str, object]]:
    found = {}
    for path in sorted(folder.glob("*.yml")):
        for group in yaml.safe_load(path.read_text("utf-8"))["groups"]:
            for rule in group["rules"]:
                found[rule.get("alert") or rule["record"]] = rule
    return found


def test_demo_mode_scrapes_fast_and_scales_the_windows_of_copies(tmp_path: Path) -> None:
    promtool = require_tool("promtool", monitor.INSTALL_HINT)
    shipped_before = {p.name: p.read_text() for p in monitor.RULES_DIR.glob("*.yml")}
    prometheus_yml, _ = monitor.prepare(
        tmp_path, app="127.0.0.1:57480", metrics_token="t", prometheus_port=9090,
        alertmanager_port=9093, postgres_targets=None, worker="127.0.0.1:57481", demo=True,
    )  # fmt: skip
    config = yaml.safe_load(prometheus_yml.read_text("utf-8"))
    assert config["global"]["scrape_interval"] == "2s"
    assert config["global"]["evaluation_interval"] == "2s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["worker"]["static_configs"] == [{"targets": ["127.0.0.1:57481"]}]
    assert jobs["app"]["static_configs"] == [{"targets": ["127.0.0.1:57480"]}]
    demo = _rules(tmp_path / "rules")
    shipped = _rules(monitor.RULES_DIR)
    mismatch = demo["CanaryPayloadMismatch"]
    assert shipped["CanaryPayloadMismatch"]["for"] == "5m"
    assert mismatch["for"] == "10s"
    assert "[20s]" in str(mismatch["expr"])
    assert "[10m]" not in str(mismatch["expr"])
    assert mismatch["annotations"] == shipped["CanaryPayloadMismatch"]["annotations"]
    assert demo.keys() == shipped.keys()
    # The repository's rules are untouched, and Prometheus accepts the copies.
    assert {p.name: p.read_text() for p in monitor.RULES_DIR.glob("*.yml")} == shipped_before
    result = subprocess.run(
        [promtool, "check", "config", str(prometheus_yml)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_windows_scale_with_a_floor_and_subqueries_and_offsets_too() -> None:
    assert demo_rules.scale("1h") == "2m"
    assert demo_rules.scale("5m") == "10s"
    assert demo_rules.scale("1m") == "10s"  # a floor: rate() needs samples in its window
    assert demo_rules.scale("5s") == "5s"  # never longer than the original
    expr = "max_over_time(rate(x[1h])[1d:5m]) / y offset 1d"
    assert demo_rules.scale_expr(expr) == "max_over_time(rate(x[2m])[48m:10s]) / y offset 48m"


def test_the_app_target_follows_the_apps_port() -> None:
    assert monitor.default_app_target({}, 57480) == "127.0.0.1:57480"
    assert monitor.default_app_target({"MONITOR_APP": "10.0.0.1:9"}, 57480) == "10.0.0.1:9"
