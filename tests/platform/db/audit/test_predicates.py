"""Candidates from a plan: a scan's candidate knows the sort above it (no database needed)."""

from __future__ import annotations

from typing import Any

from app.platform.db.audit.predicates import accesses, candidates

TEXT = (
    "SELECT o.id FROM payments_order AS o WHERE o.user_id = $1::UUID "
    "ORDER BY o.created_at DESC, o.id DESC LIMIT $2::INTEGER"
)


def _plan() -> tuple[dict[str, Any], dict[str, Any]]:
    scan = {
        "Node Type": "Seq Scan",
        "Relation Name": "payments_order",
        "Schema": "public",
        "Alias": "o",
        "Output": ["id", "created_at"],
        "Filter": "(o.user_id = '8c10b77f-39e0-4670-95e8-1bccdbd64298'::uuid)",
    }
    sort = {"Node Type": "Sort", "Sort Key": ["o.created_at DESC", "o.id DESC"], "Plans": [scan]}
    return {"Node Type": "Limit", "Plans": [sort]}, scan


def test_one_scans_candidate_is_compound_with_the_sort_above_it() -> None:
    # The advice asks about one scan at a time; the sort is its parent, not inside it.
    plan, scan = _plan()
    [access] = accesses(plan, TEXT, only=scan)
    assert access.equality == ["user_id"]
    assert access.sort == ["created_at", "id"]
    assert candidates(access)[0].columns == ("user_id", "created_at", "id")


def test_only_restricts_to_that_scan() -> None:
    plan, _ = _plan()
    other = {"Node Type": "Seq Scan", "Relation Name": "payments_order", "Alias": "o"}
    assert accesses(plan, TEXT, only=other) == []
    assert len(accesses(plan, TEXT)) == 1
