"""B: a slow analytics query blocks payments -> reports on the replica, a bulkhead, a timeout.

Two servers on the same databases: ``APP_ANALYTICS_REPORT_ISOLATION=none`` (the "before":
reports on the primary, in checkout's own pool, no bulkhead, no report statement timeout) and
as shipped (the replica, one report slot on a 2-core box, a statement timeout). Each round, for
each server: checkouts idle, then the same checkouts while a flood of funnel reports runs in a
process of its own (so its work never delays the client timing checkout). The figure the room
watches is checkout's p99 under the flood divided by its p99 idle.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx

from bench.report_flood import Flood
from workshop import servers
from workshop.core import Context, Figure, Outcome, compare, interleaved, percentile
from workshop.traffic import checkout, drive, login, seed_facts, shoppers

ADMIN = "admin@example.com"

FIGURES = (
    Figure("idle_p99", "checkout p99 idle", "ms"),
    Figure("flood_p99", "checkout p99 under the report flood", "ms"),
    Figure("slowdown", "p99 under flood / p99 idle", "x"),
)


class ReportBulkhead:
    id = "B"
    title = "A report flood and checkout"
    problem = "a slow analytics query blocks payments"
    fix = "reports on the replica, behind a bulkhead, under a statement timeout"

    def run(self, ctx: Context) -> Outcome:
        facts = seed_facts(ctx.stack, ctx.db)
        per_phase = 20 if ctx.quick else 80
        flood_clients = 6 if ctx.quick else 16
        specs: dict[str, dict[str, object]] = {
            "reports-on-primary": {"env": {"APP_ANALYTICS_REPORT_ISOLATION": "none"}},
            "bulkhead": {"env": {"APP_ANALYTICS_REPORT_MAX_CONCURRENCY": "1"}},
        }
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        params = {
            "from": (end - timedelta(days=30)).isoformat(),
            "to": end.isoformat(),
            "interval": "hour",
        }
        ctx.progress("B: starting a server without isolation and one as shipped")
        with servers.serving(ctx, specs) as running:
            people = {
                name: asyncio.run(shoppers(server.base_url, facts, 4, seed=2))
                for name, server in running.items()
            }
            admin = asyncio.run(_admin_token(running["bulkhead"].base_url))

            def measure(name: str) -> dict[str, float]:
                base = running[name].base_url
                idle = asyncio.run(drive(base, people[name], lambda s: checkout, per_phase))
                flood = Flood(base, admin, params, flood_clients, honor=True)
                try:
                    time.sleep(1.0)  # let the flood reach its steady state before timing
                    loaded = asyncio.run(drive(base, people[name], lambda s: checkout, per_phase))
                finally:
                    reports = flood.stop()
                ctx.advance(1)
                idle_p99 = percentile(idle.latencies(), 99)
                flood_p99 = percentile(loaded.latencies(), 99)
                return {
                    "idle_p99": idle_p99,
                    "flood_p99": flood_p99,
                    "slowdown": flood_p99 / idle_p99,
                    "checkout_5xx": float(
                        sum(s.status >= 500 for s in idle.samples + loaded.samples)
                    ),
                    "reports_answered": float(reports.get("200", 0)),
                    "reports_refused": float(reports.get("503", 0)),
                }

            before, after = interleaved(
                ctx.rounds, lambda: measure("reports-on-primary"), lambda: measure("bulkhead")
            )
        outcome = Outcome(
            self.id,
            self.title,
            "reports on the primary, same pool, no bulkhead or timeout",
            "reports on the replica behind a bulkhead (as shipped)",
            ctx.rounds,
            compare(FIGURES, before, after),
        )
        outcome.facts = {
            "checkouts_per_phase": per_phase,
            "report_clients": flood_clients,
            "checkout_5xx": sum(before["checkout_5xx"]) + sum(after["checkout_5xx"]),
            "reports_answered_before": sum(before["reports_answered"]),
            "reports_answered_after": sum(after["reports_answered"]),
            "reports_refused_after_503": sum(after["reports_refused"]),
        }
        slowdown = outcome.comparison("slowdown")
        outcome.checks = {
            "checkout slows down at most half as much behind the bulkhead": slowdown.ratio <= 0.5,
            "no checkout answered 5xx": outcome.facts["checkout_5xx"] == 0,
        }
        return outcome


async def _admin_token(base_url: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await login(client, ADMIN)
