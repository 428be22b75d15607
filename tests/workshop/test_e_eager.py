"""Scenario E's quick run: the lazy page's statements and the N+1 detector, the eager page's 3."""

from __future__ import annotations

from tests.workshop.conftest import QuickRuns, comparison, scenario_outcome


def test_e_the_lazy_page_runs_40_statements_or_more_the_eager_one_3_at_most(
    quick_run: QuickRuns,
) -> None:
    e = scenario_outcome(quick_run, "E")
    statements = comparison(e, "statements")
    assert statements["before"]["low"] >= 40
    assert statements["after"]["high"] <= 3
    assert len(statements["before"]["values"]) == 5


def test_e_the_n_plus_one_detector_fires_on_the_lazy_page_only(quick_run: QuickRuns) -> None:
    e = scenario_outcome(quick_run, "E")
    detections = comparison(e, "n_plus_one")
    assert detections["before"]["low"] > 0
    assert detections["after"]["high"] == 0
    facts = e["facts"]
    assert isinstance(facts, dict)
    assert "/workshop/order-history-lazy" in facts["first_n_plus_one_logged"]


def test_e_both_pages_answer_the_same_payload(quick_run: QuickRuns) -> None:
    e = scenario_outcome(quick_run, "E")
    facts = e["facts"]
    assert isinstance(facts, dict)
    assert facts["same_payload"] is True
    assert facts["non_200"] == 0
    assert facts["shipped_v1_orders_statements"] <= 3
    assert comparison(e, "p50")["ratio"] < 1  # fewer round trips: a faster page
