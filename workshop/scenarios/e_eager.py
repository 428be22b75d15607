"""E: 47 database calls per page -> explicit eager loading, query budgets, the N+1 detector.

One server mounts workshop/order_history.py: a buyer's order history (20 orders with their
items, each line's product and the order's payment) loaded lazily (the "before") and the same
page, the same bytes, with explicit eager loading (the "after"). Buyers with 20 orders or more
load each page in interleaved rounds; the server's own metrics say how many statements each
request ran (``http_request_db_queries``) and how often the N+1 detector fired
(``db_n_plus_one_total``). The shipped ``GET /v1/orders`` (items only) is measured beside them.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from workshop import servers
from workshop.core import Context, Figure, Outcome, compare, interleaved, percentile
from workshop.traffic import SeedFacts, Shopper, Step, drive, shoppers

LAZY = "/workshop/order-history-lazy"
EAGER = "/workshop/order-history"
SHIPPED = "/v1/orders"
PAGE = 20  # orders a page

FIGURES = (
    Figure("statements", "statements per request", "stmts"),
    Figure("p50", "page p50", "ms"),
    Figure("p95", "page p95", "ms"),
    Figure("n_plus_one", "N+1 detections per request", "per req"),
)


def _page(route: str) -> Step:
    async def step(client: httpx.AsyncClient, s: Shopper) -> tuple[str, httpx.Response]:
        resp = await client.get(route, params={"limit": PAGE}, headers=s.headers())
        return route, resp

    return step


def _buyers(ctx: Context, count: int) -> list[str]:
    """Verified members with at least a full page of orders."""
    return ctx.stack.primary.psql(
        "SELECT u.email FROM auth_user u JOIN payments_order o ON o.user_id = u.id "  # noqa: S608 - ints
        f"GROUP BY u.email HAVING count(*) >= {PAGE} ORDER BY u.email LIMIT {int(count)}",
        db=ctx.db,
    ).split()


def _counters(base_url: str) -> dict[tuple[str, str], float]:
    """(family sample, route) -> value, for the statement counts and the N+1 detector."""
    text = httpx.get(base_url + "/metrics", timeout=60).text
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (
                "http_request_db_queries_sum",
                "http_request_db_queries_count",
                "db_n_plus_one_total",
            ):
                route = sample.labels.get("route", "")
                found[(sample.name, route)] = found.get((sample.name, route), 0.0) + sample.value
    return found


def _per_request(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], route: str
) -> tuple[float, float]:
    def delta(name: str) -> float:
        return after.get((name, route), 0.0) - before.get((name, route), 0.0)

    requests = max(1.0, delta("http_request_db_queries_count"))
    return (
        delta("http_request_db_queries_sum") / requests,
        delta("db_n_plus_one_total") / requests,
    )


def _same_payload(base_url: str, shopper: Shopper) -> bool:
    """The two variants answer the same bytes: only how they load differs."""
    bodies = [
        httpx.get(base_url + r, params={"limit": PAGE}, headers=shopper.headers(), timeout=60)
        for r in (LAZY, EAGER)
    ]
    return all(b.status_code == 200 for b in bodies) and (
        json.loads(bodies[0].content) == json.loads(bodies[1].content)
    )


def _first_detection(log: str) -> str:
    for line in log.splitlines():
        if '"n_plus_one"' in line:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            return f"{entry.get('route')}: {entry.get('executions')} x {entry.get('statement')}"
    return "none logged"


class EagerLoading:
    id = "E"
    title = "Statements per page"
    problem = "47 database calls per page"
    fix = "explicit eager loading, query budgets, the N+1 detector"

    def run(self, ctx: Context) -> Outcome:
        emails = _buyers(ctx, 4)
        if not emails:
            raise RuntimeError(f"no member has {PAGE} orders: run make seed")
        requests = 6 if ctx.quick else 40
        # The tests' environment makes an N+1 raise; here it must be counted and logged.
        spec: dict[str, object] = {
            "env": {"APP_DB_N_PLUS_ONE_STRICT": "false"},
            "variants": ("order-history",),
        }
        ctx.progress("E: starting a server with the lazy and the eager order history")
        shipped: dict[str, list[float]] = {"statements": [], "p50": []}
        with servers.serving(ctx, {"order-history": spec}) as running:
            server = running["order-history"]
            base = server.base_url
            people = asyncio.run(shoppers(base, SeedFacts(emails, [], []), len(emails), seed=5))
            same = _same_payload(base, people[0])

            def measure(route: str) -> dict[str, float]:
                start = _counters(base)
                log = asyncio.run(drive(base, people, lambda s: _page(route), requests))
                statements, detections = _per_request(start, _counters(base), route)
                lat = log.latencies()
                return {
                    "statements": statements,
                    "n_plus_one": detections,
                    "p50": percentile(lat, 50),
                    "p95": percentile(lat, 95),
                    "errors": float(sum(s.status != 200 for s in log.samples)),
                }

            def lazy() -> dict[str, float]:
                got = measure(LAZY)
                ctx.advance(1)
                return got

            def eager() -> dict[str, float]:
                got = measure(EAGER)
                real = measure(SHIPPED)  # the shipped page, beside (items only)
                shipped["statements"].append(real["statements"])
                shipped["p50"].append(real["p50"])
                ctx.advance(1)
                return got

            before, after = interleaved(ctx.rounds, lazy, eager)
            detection = _first_detection(server.output())
        return self._outcome(ctx, before, after, shipped, same, detection, requests, len(people))

    def _outcome(
        self,
        ctx: Context,
        before: dict[str, list[float]],
        after: dict[str, list[float]],
        shipped: dict[str, list[float]],
        same: bool,
        detection: str,
        requests: int,
        buyers: int,
    ) -> Outcome:
        outcome = Outcome(
            self.id,
            self.title,
            f"order history, {PAGE} orders, loaded lazily ({LAZY})",
            f"the same page with explicit eager loading ({EAGER})",
            ctx.rounds,
            compare(FIGURES, before, after),
        )
        statements = outcome.comparison("statements")
        outcome.facts = {
            "requests_per_round": requests,
            "buyers": buyers,
            "same_payload": same,
            "non_200": sum(before["errors"]) + sum(after["errors"]),
            "first_n_plus_one_logged": detection,
            "shipped_v1_orders_statements": max(shipped["statements"]),
            "shipped_v1_orders_p50_ms": round(sorted(shipped["p50"])[len(shipped["p50"]) // 2], 1),
        }
        outcome.checks = {
            "the lazy page runs at least 40 statements a request": statements.before.low >= 40,
            "the eager page runs at most 3": statements.after.high <= 3,
            "the N+1 detector fires on the lazy page only": outcome.comparison(
                "n_plus_one"
            ).before.low
            > 0
            and outcome.comparison("n_plus_one").after.high == 0,
            "both pages answer the same payload, every request 200": same
            and outcome.facts["non_200"] == 0,
        }
        return outcome
