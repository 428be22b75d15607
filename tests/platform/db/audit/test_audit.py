"""The audit on the session's primary and replica: top statements, proven advice, health checks."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.platform.db.audit.advice import Options
from app.platform.db.audit.model import Report
from app.platform.db.audit.runner import AuditConfig, run_audit
from tests.platform.db.audit.conftest import Lab


@pytest.fixture(scope="module")
def report(lab: Lab) -> Report:
    cfg = AuditConfig(lab.primary, [lab.replica], advice=Options(verify=True, runs=5))
    return asyncio.run(run_audit(cfg))


def _finding(report: Report, check: str, name: str) -> list[str]:
    return [f.subject for f in report.findings if f.check == check and name in f.subject]


def test_the_statement_missing_its_index_ranks_top_3_with_its_module_and_route(
    report: Report,
) -> None:
    top = report.top["primary"][:3]
    found = [s for s in top if "FROM probe_order" in s.query and "tenant_id" in s.query]
    assert found, [s.query for s in report.top["primary"]]
    assert (found[0].module, found[0].route) == ("payments", "GET /v1/probe/orders")
    assert found[0].calls == 300
    assert 0 < found[0].share <= 1


def test_the_audit_advises_exactly_the_dropped_index_and_proves_it(report: Report) -> None:
    advice = [a for a in report.advice if a.table == "probe_order"]
    assert len(advice) == 1, report.advice
    (item,) = advice
    assert (item.columns, item.include, item.where) == (["tenant_id", "created_at"], [], None)
    assert item.status == "verified"
    assert item.cost_drop >= 0.9, item
    assert item.speedup is not None
    assert item.speedup >= 10, (item.before, item.after)
    assert item.before is not None
    assert item.after is not None
    assert item.after.buffers < item.before.buffers
    assert item.saved_ms > 0
    assert "inserts_per_s" in item.write_cost
    assert "HOT" in item.write_cost["hot_note"]
    # The plan it was proven with ran with the parameters the app really used.
    plans = [
        p
        for p in report.plans
        if p.queryid
        == next(s.queryid for s in report.top["primary"] if "FROM probe_order" in s.query)
    ]
    assert plans
    assert plans[0].parameters == "sampled"
    assert plans[0].analyzed
    assert any(s["table"] == "probe_order" for s in plans[0].seq_scans)


def test_verified_indexes_are_dropped_again_without_apply(lab: Lab, report: Report) -> None:
    assert report.advice
    assert lab.psql("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'ix_audit_%'") == "0"


def test_a_candidate_hypopg_likes_but_timing_refutes_is_rejected_with_figures(
    report: Report,
) -> None:
    rejected = [a for a in report.rejected if a.table == "probe_flag"]
    assert len(rejected) == 1, (report.rejected, report.notes)
    (item,) = rejected
    assert item.cost_drop >= 0.5
    assert item.speedup is not None
    assert item.speedup < 2
    assert item.before is not None
    assert item.after is not None
    assert f"{item.before.p50_ms:.3f}" in item.reason
    assert f"{item.after.p50_ms:.3f}" in item.reason
    assert not [a for a in report.advice if a.table == "probe_flag"]


def test_seed_migration_and_audit_statements_are_left_out(report: Report) -> None:
    for node, top in report.top.items():
        for s in top:
            word = s.query.lstrip().split()[0].lower()
            assert word in ("select", "insert", "update", "delete", "with"), (node, s.query)
            assert "app_audit" not in s.query
            assert "pg_catalog" not in s.query


def test_the_replicas_statements_are_read_too(report: Report) -> None:
    found = [s for s in report.top["replica"] if "FROM probe_lookup" in s.query]
    assert found
    assert found[0].calls == 20
    assert found[0].route == "GET /v1/probe/lookup"


def test_a_planted_unused_index_and_a_duplicate_are_reported(report: Report) -> None:
    assert _finding(report, "unused_index", '"ix_probe_order_note"')
    assert _finding(report, "duplicate_index", '"ix_probe_order_amount_copy"')
    dup = next(f for f in report.findings if f.check == "duplicate_index")
    assert dup.fix_sql.startswith("DROP INDEX CONCURRENTLY")


def test_an_index_scanned_only_on_the_replica_is_not_unused(lab: Lab, report: Report) -> None:
    scans = lab.psql(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'ix_probe_lookup_code'"
    )
    assert scans == "0", "the primary must not have scanned it, or this test proves nothing"
    assert not _finding(report, "unused_index", "ix_probe_lookup_code")


def test_a_foreign_key_without_an_index_is_reported(report: Report) -> None:
    (finding,) = [
        f for f in report.findings if f.check == "fk_without_index" and "probe_invoice" in f.subject
    ]
    assert finding.evidence["columns"] == ["customer_id"]
    assert (
        finding.fix_sql == 'CREATE INDEX CONCURRENTLY ON "public"."probe_invoice" ("customer_id");'
    )


async def test_reset_needs_the_monitoring_role(lab: Lab) -> None:
    app_conn = await asyncpg.connect(lab.app_url(lab.stack.primary_port))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await app_conn.close()
