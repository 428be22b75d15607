"""The PrometheusRule and the dashboard ConfigMaps are prometheus/rules/ and grafana/dashboards/,
regenerated: one source of truth, and a failing test when someone edits one side only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.k8s.manifests import REPO, objects
from tools import k8s_monitoring


def test_the_committed_files_are_what_the_generator_writes() -> None:
    for path, text in k8s_monitoring.outputs().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO)} is out of date: run `make kube-generate`"
        )
    assert k8s_monitoring.main(["--check"]) == 0


def test_the_rendered_rules_and_dashboards_are_their_sources() -> None:
    (rule,) = objects("base", "PrometheusRule")
    groups = [
        group
        for path in sorted((REPO / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    ]
    assert rule["spec"]["groups"] == groups
    boards = {
        name: json.loads(text)
        for config_map in objects("base", "ConfigMap")
        if (config_map["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"
        for name, text in config_map["data"].items()
    }
    sources = {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in (REPO / "grafana" / "dashboards").glob("*.json")
    }
    assert boards == sources


@pytest.mark.parametrize("source", ["rules", "dashboards"])
def test_an_edited_source_is_reported_as_drift(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, dashboards = tmp_path / "rules", tmp_path / "dashboards"
    shutil.copytree(REPO / "prometheus" / "rules", rules)
    shutil.copytree(REPO / "grafana" / "dashboards", dashboards)
    monkeypatch.setattr(k8s_monitoring, "RULES", rules)
    monkeypatch.setattr(k8s_monitoring, "DASHBOARDS", dashboards)
    assert k8s_monitoring.main(["--check"]) == 0
    if source == "rules":
        path = rules / "app.yml"
        path.write_text(path.read_text().replace("for: 2m", "for: 3m", 1))
    else:
        path = dashboards / "events.json"
        board = json.loads(path.read_text())
        board["title"] += " (edited)"
        path.write_text(json.dumps(board))
    assert k8s_monitoring.main(["--check"]) == 1
