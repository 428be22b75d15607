"""What the monitoring tests share: the rules, rule tests and dashboards, and a Prometheus."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import require_tool
from tools import monitor
from tools.pgstack import free_port

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "prometheus" / "rules"
RULE_TESTS_DIR = REPO / "prometheus" / "tests"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
RUNBOOKS_DIR = REPO / "docs" / "runbooks"
MODULES = {"auth", "payments", "notifications", "analytics", "platform"}
SEVERITIES = {"page", "ticket"}

# Grafana's built-in variables, replaced the way Grafana would for a one-hour view.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*_test.yml"))


def rules() -> list[dict[str, Any]]:
    """Every rule of every rule file, with `_file` and `_group` added."""
    found = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text("utf-8"))["groups"]:
            for rule in group["rules"]:
                found.append({**rule, "_file": path.name, "_group": group["name"]})
    return found


def recording_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "record" in rule]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref}"


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text("utf-8")) for p in sorted(DASHBOARDS_DIR.rglob("*.json"))
    }


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep theirs inside


def panel_queries() -> list[PanelQuery]:
    found = []
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                found.append(PanelQuery(name, panel["title"], target["refId"], target["expr"]))
    return found


def variable_values(board: dict[str, Any]) -> dict[str, str]:
    """What each dashboard variable stands for in a query: a query variable's "All" regex."""
    values = dict(BUILTINS)
    for variable in board.get("templating", {}).get("list", []):
        if variable["type"] == "datasource":
            values[variable["name"]] = "prometheus"
        else:
            values[variable["name"]] = variable.get("allValue") or ".*"
    return values


def referenced_variables(expr: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(expr)}


def substitute(expr: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return values[name]

    return _VARIABLE.sub(replace, expr)


_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def label_matchers() -> list[tuple[str, str, str, str]]:
    """(metric, label, operator, value) of every label matcher with a fixed value in a rule's or a
    panel's expression."""
    exprs = [r["expr"] for r in rules()] + [q.expr for q in panel_queries()]
    found = {
        (metric, label, op, value)
        for expr in exprs
        for metric, body in _SELECTOR.findall(expr)
        for label, op, value in _MATCHER.findall(body)
        if "$" not in value  # a dashboard variable
    }
    return sorted(found)


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> httpx.Response:
        return httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)

    def result(self, expr: str) -> list[dict[str, Any]]:
        resp = self.query(expr)
        assert resp.status_code == 200, f"{expr}: {resp.status_code} {resp.text}"
        result: list[dict[str, Any]] = resp.json()["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        resp = httpx.get(self.url + "/api/v1/alerts", timeout=10)
        resp.raise_for_status()
        alerts: list[dict[str, Any]] = resp.json()["data"]["alerts"]
        return alerts


@contextmanager
def prometheus(folder: Path, config: dict[str, Any]) -> Iterator[Prometheus]:
    """Debian's Prometheus on a free loopback port with an empty TSDB in folder."""
    require_tool("prometheus", monitor.INSTALL_HINT)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    service = monitor.start_prometheus(config_path, folder / "data", free_port(), folder / "log")
    with monitor.running(service):
        yield Prometheus(service.url)
