"""Grafana dashboards: every query is valid PromQL once its variables are substituted (checked by a
real Prometheus), and every panel tells the on-call engineer what it shows and in which unit."""

from __future__ import annotations

import re

import pytest

from tests.monitoring.stack import (
    PanelQuery,
    Prometheus,
    dashboards,
    panel_queries,
    panels,
    referenced_variables,
    substitute,
    variable_values,
)

BOARDS = dashboards()
QUERIES = panel_queries()
EXPECTED = {"service-overview.json", "business.json", "database.json", "events.json"}
_RANGE = re.compile(r"\[([^\]]+)\]")
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def _variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable, the series selector inside label_values(...)) of query variables."""
    found = []
    for name, board in BOARDS.items():
        for variable in board.get("templating", {}).get("list", []):
            if variable["type"] == "query":
                query = variable["query"]
                text = query["query"] if isinstance(query, dict) else query
                match = _LABEL_VALUES.match(text.strip())
                assert match, f"{name} ${variable['name']}: {text}"
                assert match.group("selector"), f"{name} ${variable['name']}: no series selector"
                found.append((name, variable["name"], match.group("selector")))
    return found


def test_the_four_dashboards_exist() -> None:
    assert BOARDS.keys() >= EXPECTED


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_has_a_description_a_unit_and_the_datasource_variable(name: str) -> None:
    board = BOARDS[name]
    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
    assert variables.get("datasource", {}).get("type") == "datasource", f"{name}: no $datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        title = panel.get("title")
        assert title, f"{name}: a panel without a title"
        assert len(panel.get("description", "")) >= 20, f"{name} '{title}': no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{name} '{title}': no unit"
        assert panel["datasource"]["uid"] == "${datasource}", f"{name} '{title}': fixed datasource"
        assert panel.get("targets"), f"{name} '{title}': no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.id)
def test_queries_use_rate_interval_and_defined_variables(query: PanelQuery) -> None:
    board = BOARDS[query.dashboard]
    undefined = referenced_variables(query.expr) - variable_values(board).keys()
    assert not undefined, f"undefined variables {undefined}"
    for window in _RANGE.findall(query.expr):
        # A fixed window is wrong at some zoom level: too short for the scrape interval, or
        # smoothing away the spike the panel is there to show.
        assert window in ("$__rate_interval", "$__range"), f"fixed range [{window}]"


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.id)
def test_every_dashboard_query_is_valid_promql(
    query: PanelQuery, empty_prometheus: Prometheus
) -> None:
    expr = substitute(query.expr, variable_values(BOARDS[query.dashboard]))
    resp = empty_prometheus.query(expr)
    assert resp.status_code == 200, f"{expr}\n{resp.status_code} {resp.text}"


@pytest.mark.parametrize(
    ("dashboard", "variable", "selector"), _variable_queries(), ids=lambda v: str(v)
)
def test_every_variable_query_is_a_valid_selector(
    dashboard: str, variable: str, selector: str, empty_prometheus: Prometheus
) -> None:
    expr = substitute(selector, variable_values(BOARDS[dashboard]))
    resp = empty_prometheus.query(expr)
    assert resp.status_code == 200, f"{dashboard} ${variable}: {expr}\n{resp.text}"


def test_the_parser_check_can_fail(empty_prometheus: Prometheus) -> None:
    # The check above means something only if Prometheus refuses bad PromQL with a 400.
    assert (
        empty_prometheus.query("sum by (module (rate(http_requests_total[1m]))").status_code == 400
    )
