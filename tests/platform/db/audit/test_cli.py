"""``python -m app db audit``: JSON, Markdown, the baseline's exit status, and --reset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.platform.db.audit.conftest import DB, Lab

ROOT = Path(__file__).resolve().parents[4]


def _audit(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_DATABASE_URL": lab.stack.url(lab.stack.primary_port, db=DB),
        "APP_REPLICA_DATABASE_URL": lab.stack.url(lab.stack.replica_port, db=DB),
        "APP_AUDIT_DATABASE_URL": lab.primary,
    }
    return subprocess.run(
        [sys.executable, "-m", "app", "db", "audit", "--explain", "0", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_json_markdown_and_a_baseline_that_fails_on_a_new_finding(lab: Lab, tmp_path: Path) -> None:
    markdown = tmp_path / "audit.md"
    first = _audit(lab, "--json", "--markdown", str(markdown))
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert body["nodes"] == ["primary", "replica"]
    assert 'unused_index:"public"."ix_probe_order_note"' in body["keys"]
    assert any("FROM probe_order" in s["query"] for s in body["top"]["primary"])
    text = markdown.read_text()
    assert "## Top statements on replica" in text
    assert "ix_probe_order_note" in text
    assert "DROP INDEX CONCURRENTLY" in text

    baseline = tmp_path / "baseline.json"
    baseline.write_text(first.stdout)
    same = _audit(lab, "--baseline", str(baseline))
    assert same.returncode == 0, same.stderr + same.stdout[-2000:]
    assert "Health checks" in same.stdout  # the terminal table

    lab.psql("CREATE INDEX ix_probe_planted ON probe_flag (amount)")
    try:
        planted = _audit(lab, "--baseline", str(baseline))
    finally:
        lab.psql("DROP INDEX ix_probe_planted")
    assert planted.returncode == 1
    assert 'new: unused_index:"public"."ix_probe_planted"' in planted.stderr


def test_reset_as_the_monitoring_role_empties_the_statistics_on_every_node(lab: Lab) -> None:
    result = _audit(lab, "--reset", "--json")
    assert result.returncode == 0, result.stderr
    assert "reset on every node" in result.stdout
    # Each node keeps its own statistics: both must have forgotten the lab's statements.
    count = (
        "SELECT count(*) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE d.datname = 'audit_lab' AND s.query LIKE '%probe_%'"
    )
    assert DB == "audit_lab"
    for node in (lab.stack.primary, lab.stack.replica):
        assert node.psql(count) == "0", node.name
