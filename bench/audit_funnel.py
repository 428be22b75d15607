"""The audit on the large seed: the funnel's click index dropped, the report run, the advice.

On the local stack after ``make seed PRESET=large RESET=1`` (APP_* settings as for ``make run``):
drops ``ix_analytics_event_click_search_id``, resets the statistics, runs the funnel report over
the last ``--minutes`` of the seed through the app a few times, runs the audit with ``--verify``
in this process (so it explains with the parameters the app's instrumentation sampled), prints
the top 5 of each node, the advice and its measured before/after, and puts the index back.

    python -m bench.audit_funnel --minutes 10 --calls 2 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from rich.console import Console

from app.main import create_app
from app.platform.config import Settings
from app.platform.db.audit import report as out
from app.platform.db.audit.advice import Options
from app.platform.db.audit.nodes import plain_dsn, with_credentials_of
from app.platform.db.audit.runner import AuditConfig, run_audit
from app.platform.security import create_access_token

INDEX = "ix_analytics_event_click_search_id"
DEFINITION = (
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON analytics_event (search_id) "
    "WHERE type = 'search_click'"
)


async def _report_calls(settings: Settings, calls: int, end: datetime, minutes: int) -> list[float]:
    app = create_app(settings)
    token = create_access_token(settings, uuid.uuid4(), ("member", "admin"))
    params = {"from": (end - timedelta(minutes=minutes)).isoformat(), "to": end.isoformat()}
    took = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(calls):
                started = time.perf_counter()
                response = await client.get(
                    "/v1/analytics/reports/funnel",
                    params={**params, "interval": "hour"},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=3600,
                )
                took.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
    return took


async def main(args: argparse.Namespace) -> None:
    settings = Settings(
        analytics_report_statement_timeout_ms=args.timeout_ms, db_statement_timeout_ms=0
    )
    audit_url = str(settings.audit_database_url or settings.database_url)
    owner = await asyncpg.connect(plain_dsn(str(settings.database_url)))
    try:
        end = await owner.fetchval(
            "SELECT date_trunc('hour', max(occurred_at)) FROM analytics_event"
        )
        await owner.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        replicas = [with_credentials_of(str(settings.replica_database_url), audit_url)]
        await run_audit(AuditConfig(audit_url, replicas, reset=True))
        took = await _report_calls(settings, args.calls, end or datetime.now(UTC), args.minutes)
        print(f"funnel report without {INDEX}: " + ", ".join(f"{t:.1f} s" for t in took))
        cfg = AuditConfig(
            audit_url, replicas, top=5, explain=5,
            advice=Options(verify=True, runs=args.runs, timeout_ms=args.timeout_ms),
        )  # fmt: skip
        result = await run_audit(cfg)
        load = os.getloadavg()
        out.render(result, Console(width=220))
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if args.markdown:
            await asyncio.to_thread(Path(args.markdown).write_text, out.to_markdown(result))
    finally:
        await owner.execute(DEFINITION)
        await owner.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3, help="funnel reports before the audit")
    parser.add_argument("--minutes", type=int, default=60, help="the report's window")
    parser.add_argument("--runs", type=int, default=3, help="--verify re-runs before and after")
    parser.add_argument("--timeout-ms", type=int, default=900_000)
    parser.add_argument("--markdown", help="also write the audit's Markdown report here")
    asyncio.run(main(parser.parse_args()))
