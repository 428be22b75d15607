"""Scenario D's quick run: the audit names the dropped compound index; the query runs faster."""

from __future__ import annotations

from tests.workshop.conftest import WORKSHOP_DB, QuickRuns, comparison, scenario_outcome
from tools.pgstack import Stack


def test_d_the_audit_advises_the_dropped_compound_index(quick_run: QuickRuns) -> None:
    facts = scenario_outcome(quick_run, "D")["facts"]
    assert isinstance(facts, dict)
    advice = facts["audit_advice"]
    assert '"payments_order" ("user_id", "created_at", "id")' in advice, advice
    assert facts["audit_status"] == "verified"  # built, timed, at least 2x, dropped again
    assert facts["audit_rank_of_the_statement_on_the_primary"] == 1


def test_d_the_query_is_faster_with_the_index(quick_run: QuickRuns) -> None:
    d = scenario_outcome(quick_run, "D")
    query = comparison(d, "query_us")
    assert len(query["before"]["values"]) == 5  # every round kept
    assert query["after"]["high"] < query["before"]["low"]  # every round, not only the medians
    assert query["ratio"] < 1 / 3
    facts = d["facts"]
    assert isinstance(facts, dict)
    assert facts["non_200"] == 0


def test_d_leaves_the_shipped_index_as_migrated(
    quick_run: QuickRuns, workshop_stack: Stack
) -> None:
    quick_run("D")
    found = workshop_stack.primary.psql(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'payments_order' ORDER BY indexname",
        db=WORKSHOP_DB,
    ).splitlines()
    assert any(
        "ix_payments_order_user_id_created_at_id" in d and "(user_id, created_at, id)" in d
        for d in found
    ), found
    assert not [d for d in found if "ix_audit_" in d]  # the audit's trial index is gone
