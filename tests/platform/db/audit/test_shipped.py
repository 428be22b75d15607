"""On the shipped schema, seeded and under the project's own traffic, the audit advises no index.

Not vacuous: the reports' statements on the 60,000 seeded events are among those explained, and
the audit's advice does fire on a table that lacks the index its statement needs (test_audit.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command

from app.main import create_app
from app.platform.db.audit.model import Report
from app.platform.db.audit.runner import AuditConfig, run_audit
from app.platform.db.migrations import alembic_config
from app.platform.security import create_access_token
from app.seed.runner import seed
from app.seed.world import Preset
from tests.helpers import make_settings, replica_catch_up, serving
from tools.pgstack import AUDIT_PASSWORD, AUDIT_USER, Stack

DB = "audit_shipped"
END = datetime(2026, 1, 1, tzinfo=UTC)
# The small preset's shape at a third of its size: analytics_event still far above the size
# under which the audit leaves a table's seq scans alone.
PRESET = Preset(users=2_000, products=300, events=60_000, days=30, orders_per_user=0.6)


def _bearer(settings: object, user_id: uuid.UUID, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_access_token(settings, user_id, roles)}"}  # type: ignore[arg-type]


async def _traffic(stack: Stack) -> None:
    """A bounded mix of the API's reads and writes, each route several times."""
    settings = make_settings(
        stack,
        database_url=stack.url(stack.primary_port, db=DB),
        replica_database_url=stack.url(stack.replica_port, db=DB),
        db_n_plus_one_strict=False,
        # The reports take tens of milliseconds here: low enough that each keeps a sample.
        db_sample_slow_ms=1,
    )
    admin = _bearer(settings, uuid.uuid4(), "member", "admin")
    window = {"from": (END - timedelta(days=7)).isoformat(), "to": END.isoformat()}
    async with serving(create_app(settings)) as client:
        users = (await client.get("/v1/auth/users", params={"limit": 5}, headers=admin)).json()
        member = _bearer(settings, uuid.UUID(users["items"][1]["id"]), "member")
        for i in range(8):
            for path, params, headers in (
                ("/v1/products", {}, {}),
                ("/v1/products/search", {"q": ["lamp", "chair", "mug", "desk"][i % 4]}, {}),
                ("/v1/analytics/reports/funnel", {**window, "interval": "day"}, admin),
                ("/v1/analytics/reports/search-terms", window, admin),
                ("/v1/analytics/reports/clicked-products", window, admin),
                ("/v1/orders", {}, member),
                ("/v1/notifications", {}, member),
                ("/v1/auth/users", {"limit": 50}, admin),
            ):
                response = await client.get(path, params=params, headers=headers)
                assert response.status_code == 200, (path, response.text)
            events = [
                {
                    "type": "search",
                    "search_id": str(uuid.uuid4()),
                    "query": "lamp",
                    "result_count": 3,
                }
                for _ in range(20)
            ]
            response = await client.post(
                "/v1/analytics/events", json={"anonymous_id": f"a{i}", "events": events}
            )
            assert response.status_code == 202


@pytest.fixture(scope="module")
def shipped(pg_stack: Stack) -> Iterator[Report]:
    pg_stack.primary.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    pg_stack.primary.psql(f"CREATE DATABASE {DB} OWNER app")
    command.upgrade(alembic_config(pg_stack.url(pg_stack.primary_port, db=DB)), "head")
    asyncio.run(seed(pg_stack.url(pg_stack.primary_port, db=DB), PRESET, seed=5, end=END))
    replica_catch_up(pg_stack)
    asyncio.run(_traffic(pg_stack))
    audit = f"postgresql://{AUDIT_USER}:{AUDIT_PASSWORD}@127.0.0.1:{{}}/{DB}"
    cfg = AuditConfig(audit.format(pg_stack.primary_port), [audit.format(pg_stack.replica_port)])
    yield asyncio.run(run_audit(cfg))
    pg_stack.primary.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def test_the_shipped_schema_under_its_own_traffic_needs_no_index(shipped: Report) -> None:
    explained = {p.queryid: p for p in shipped.plans if p.node == "replica"}
    reports = [s for s in shipped.top["replica"] if "FROM analytics_event" in s.query]
    assert len(reports) == 3, [s.query for s in shipped.top["replica"]]
    for statement in reports:
        plan = explained[statement.queryid]
        assert (plan.analyzed, plan.parameters, plan.error) == (True, "sampled", None), plan
        assert statement.module == "analytics"
        assert statement.route
    assert shipped.advice == [], [a.definition for a in shipped.advice]
    assert not [f for f in shipped.findings if f.check == "invalid_index"]
