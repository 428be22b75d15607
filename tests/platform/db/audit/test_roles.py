"""What the audit needs from its environment: the monitoring role, HypoPG, CI, compose, the tag."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from app.platform.db.audit.statements import attribution
from app.platform.observability.sql import sql_tag
from tests.platform.db.audit.conftest import Lab
from tools.pgstack import AUDIT_USER

ROOT = Path(__file__).resolve().parents[4]


def test_the_stack_creates_the_monitoring_role_with_hypopg_everywhere(lab: Lab) -> None:
    node = lab.stack.primary
    member_of = node.psql(
        "SELECT string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_auth_members m "
        "JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member "
        "WHERE u.rolname = 'app_audit'"
    )
    assert member_of == "app,pg_monitor"
    assert AUDIT_USER == "app_audit"
    assert node.psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'app_audit'") == "f"
    for db in ("app", "template1", "audit_lab"):
        assert node.psql("SELECT extversion FROM pg_extension WHERE extname = 'hypopg'", db=db)


def test_ci_installs_hypopg() -> None:
    script = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")
    install = re.search(r"apt-get install[^\n]*", script)
    assert install is not None
    assert "postgresql-15-hypopg" in install.group(0).split()


def test_compose_gives_the_app_the_monitoring_role_the_primary_creates() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    primary = compose["services"]["postgres-primary"]["environment"]
    url = urlsplit(compose["services"]["app"]["environment"]["APP_AUDIT_DATABASE_URL"])
    assert (url.username, url.password) == (primary["AUDIT_USER"], primary["AUDIT_PASSWORD"])
    assert url.hostname == "postgres-primary"
    init = (ROOT / "deploy" / "compose" / "primary-init.sh").read_text()
    assert "CREATE ROLE :\"audit_user\" LOGIN PASSWORD :'audit_password' IN ROLE pg_monitor" in init
    assert "pg_stat_statements_reset(oid, oid, bigint)" in init


def test_the_sql_tag_round_trips_and_cannot_close_its_comment() -> None:
    tag = sql_tag("payments", "GET /v1/x/{id}*/; DROP TABLE t; --'")
    assert tag.count("*/") == 1
    assert tag.endswith("*/")
    assert attribution("SELECT 1" + tag) == ("payments", "GET /v1/x/{id}*/; DROP TABLE t; --'")
    assert sql_tag("payments", "GET /v1/x") is sql_tag("payments", "GET /v1/x")
