"""F: the primary does all the work -> reads go to the replica.

Two servers on the same databases, one with replica routing off (``APP_DB_REPLICA_READS=false``:
every read on the primary, the "before") and one as shipped; the same mixed shop traffic on real
routes, round after round. pg_stat_statements on each node says how many statements and how much
execution time the primary took.
"""

from __future__ import annotations

import asyncio

from tools.pgstack import Node
from workshop import servers
from workshop.core import Context, Figure, Outcome, compare, interleaved, percentile
from workshop.traffic import (
    browse,
    checkout,
    drive,
    inbox,
    orders,
    product,
    search,
    seed_facts,
    shoppers,
    weighted,
)

# The app's own statements, without transaction control (BEGIN/COMMIT are not work).
_TOTALS = """
SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0)
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = current_database() AND s.userid = 'app'::regrole
  AND s.query !~* '^\\s*(begin|commit|rollback|start transaction|set )'
"""

# A shop: mostly reads of the catalog, some account pages, a few purchases (a 2% conversion
# is already a good shop's; each checkout is a dozen statements on the primary).
MIX = weighted(
    (browse, 40),
    (search, 25),
    (product, 22),
    (inbox, 6),
    (orders, 5),
    (checkout, 2),
)

FIGURES = (
    Figure("primary_statements", "primary's share of statements", "%"),
    Figure("primary_time", "primary's share of execution time", "%"),
    Figure("p50", "request p50", "ms"),
    Figure("p95", "request p95", "ms"),
)


def _totals(node: Node, db: str) -> tuple[float, float]:
    calls, ms = node.psql(_TOTALS, db=db).split("|")
    return float(calls), float(ms)


class ReplicaReads:
    id = "F"
    title = "Reads on the replica"
    problem = "the primary does all the work"
    fix = "non-transactional reads routed to the streaming replica, read-your-writes kept"

    def run(self, ctx: Context) -> Outcome:
        stack = ctx.stack
        facts = seed_facts(stack, ctx.db)
        requests = 60 if ctx.quick else 400
        specs: dict[str, dict[str, object]] = {
            "routing-off": {"env": {"APP_DB_REPLICA_READS": "false"}},
            "routing-on": {"env": {}},
        }
        ctx.progress("F: starting a server with routing off and one as shipped")
        with servers.serving(ctx, specs) as running:
            people = {
                name: asyncio.run(shoppers(server.base_url, facts, 6 if ctx.quick else 8, seed=6))
                for name, server in running.items()
            }

            def measure(name: str) -> dict[str, float]:
                p0, r0 = _totals(stack.primary, ctx.db), _totals(stack.replica, ctx.db)
                log = asyncio.run(drive(running[name].base_url, people[name], MIX, requests))
                p1, r1 = _totals(stack.primary, ctx.db), _totals(stack.replica, ctx.db)
                ctx.advance(1)
                statements = (p1[0] - p0[0], r1[0] - r0[0])
                time_ms = (p1[1] - p0[1], r1[1] - r0[1])
                lat = log.latencies()
                return {
                    "primary_statements": 100 * statements[0] / max(1.0, sum(statements)),
                    "primary_time": 100 * time_ms[0] / max(1e-9, sum(time_ms)),
                    "p50": percentile(lat, 50),
                    "p95": percentile(lat, 95),
                    "errors": float(sum(s.status >= 500 for s in log.samples)),
                    "statements": float(sum(statements)),
                }

            before, after = interleaved(
                ctx.rounds, lambda: measure("routing-off"), lambda: measure("routing-on")
            )
        outcome = Outcome(
            self.id,
            self.title,
            "routing off (every read on the primary)",
            "routing on (as shipped)",
            ctx.rounds,
            compare(FIGURES, before, after),
        )
        share = outcome.comparison("primary_statements")
        outcome.facts = {
            "requests_per_round": requests,
            "server_errors": sum(before["errors"]) + sum(after["errors"]),
            "statements_per_round": sum(before["statements"]) / ctx.rounds,
        }
        outcome.checks = {
            "the primary's share of statements at most half of before's": share.ratio <= 0.5,
            "no 5xx in either variant": outcome.facts["server_errors"] == 0,
        }
        return outcome
