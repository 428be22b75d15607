"""The server's view of a run, read from Prometheus over exactly the run's window.

The window is bounded by two scrapes: the first Prometheus took after the load test's setup and
before its first arrival (``start``), the first it took after the last answer (``end``). Every
counter is read at both instants with the ``@`` modifier and subtracted, so nothing before or
after the run counts and nothing is extrapolated (``increase()`` would extrapolate to the window's
edges). The recording rules of ``prometheus/rules/`` are evaluated that way too: each
``rate(selector[range])`` in a rule becomes ``(selector @ end - selector @ start) / seconds``
and each recorded series it reads is replaced by its own rewritten rule, so the numbers are the
rules' own definitions (the SLO ratios, the route percentiles) over the run alone.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

_RATE = re.compile(r"rate\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s*\[[0-9smhdwy]+\]\s*\)")


class PrometheusUnavailable(RuntimeError):
    """Prometheus did not answer, or never scraped the app."""


def delta(selector: str, start: float, end: float) -> str:
    """The increase of a counter selector between two instants, series born in between kept."""
    return f"({selector} @ {end:.3f} - ({selector} @ {start:.3f} or {selector} @ {end:.3f} * 0))"


def over_window(expr: str, records: dict[str, str], start: float, end: float) -> str:
    """A rule's expression with every rate() over the exact window and recorded series inlined."""
    seconds = end - start

    def inline(text: str, depth: int = 0) -> str:
        if depth > 5:
            raise ValueError(f"recording rules nested too deep: {expr}")
        for name in sorted(records, key=len, reverse=True):
            pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:{{\[])")
            if pattern.search(text):
                text = pattern.sub(_literal(f"({inline(records[name], depth + 1)})"), text)
        return text

    inlined = inline(expr)
    return _RATE.sub(lambda m: f"({delta(m.group(1), start, end)} / {seconds:.3f})", inlined)


@dataclass
class Prometheus:
    url: str
    job: str = "app"

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        data = {"query": expr}
        if at is not None:
            data["time"] = f"{at:.3f}"
        try:
            resp = httpx.post(self.url + "/api/v1/query", data=data, timeout=30)
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(f"{self.url}: {exc}") from exc
        if resp.status_code != 200:
            raise PrometheusUnavailable(f"{expr[:200]}: {resp.status_code} {resp.text[:500]}")
        result: list[dict[str, Any]] = resp.json()["data"]["result"]
        return result

    def values(self, expr: str, *labels: str, at: float | None = None) -> dict[str, float]:
        """label values joined by ' ' -> number, for every finite sample of the result."""
        found = {}
        for sample in self.query(expr, at):
            value = float(sample["value"][1])
            if math.isfinite(value):
                found[" ".join(sample["metric"].get(label, "") for label in labels)] = value
        return found

    def last_scrape(self) -> float:
        result = self.query(f'max(timestamp(up{{job="{self.job}"}} == 1))')
        return float(result[0]["value"][1]) if result else 0.0

    def scrape_after(self, moment: float, timeout: float = 120.0) -> float:
        """The time of the first successful scrape of the app after ``moment``."""
        deadline = time.monotonic() + timeout
        while True:
            scraped = self.last_scrape()
            if scraped > moment:
                return scraped
            if time.monotonic() > deadline:
                raise PrometheusUnavailable(
                    f"{self.url} did not scrape job {self.job!r} within {timeout:.0f}s "
                    "(is the app among its targets?)"
                )
            time.sleep(0.2)


def server_view(
    prom: Prometheus, records: dict[str, str], bound: float, start: float, end: float
) -> dict[str, Any]:
    """What the app's metrics say about [start, end]: routes, SLO ratios, business, database."""

    def d(selector: str) -> str:
        return delta(selector, start, end)

    def rule(name: str) -> str:
        return over_window(records[name], records, start, end)

    job = f'job="{prom.job}"'
    requests = f"http_requests_total{{{job}}}"
    buckets = f"http_request_duration_seconds_bucket{{{job}}}"
    by_route = "module, route"
    routes: dict[str, dict[str, float]] = {}
    errors = "http_requests_total{" + job + ',status=~"5.."}'
    within = "http_request_duration_seconds_bucket{" + job + f',le="{bound:g}"' + "}"
    columns = {
        "count": f"sum by ({by_route}) ({d(requests)})",
        "server_errors": f"sum by ({by_route}) ({d(errors)})",
        "within_bound": f"sum by ({by_route}) ({d(within)})",
        **{
            f"p{q}": f"histogram_quantile(0.{q}, sum by ({by_route}, le) ({d(buckets)}))"
            for q in (50, 95, 99)
        },
    }
    for column, expr in columns.items():
        for key, value in prom.values(expr, "module", "route", at=end).items():
            routes.setdefault(key, {})[column] = value
    modules = {
        name: prom.values(rule(name), "module", at=end)
        for name in (
            "module:slo_availability_errors:ratio_rate5m",
            "module:slo_latency_errors:ratio_rate5m",
        )
    }
    business_rules = (
        "job:payments_checkouts_success:ratio_rate5m",
        "job:auth_signups_completion:ratio_rate1h",
        "job:analytics_search_click:ratio_rate1h",
    )
    business = {name: prom.values(rule(name), at=end).get("", math.nan) for name in business_rules}
    counters = {
        "checkouts": prom.values(
            f"sum by (outcome) ({d('payments_checkouts_total')})", "outcome", at=end
        ),
        "signups": prom.values(f"sum by (stage) ({d('auth_signups_total')})", "stage", at=end),
        "events": prom.values(f"sum by (type) ({d('analytics_events_total')})", "type", at=end),
    }
    waits = "db_pool_wait_seconds_bucket"
    quick_waits = waits + '{le="0.01"}'
    database = {
        "queries": prom.values(
            f"sum by (target) ({d('db_query_duration_seconds_count')})", "target", at=end
        ),
        "read_routes": prom.values(
            f"sum by (target, reason) ({d('db_read_route_total')})", "target", "reason", at=end
        ),
        "pool_wait_p99": prom.values(
            f"histogram_quantile(0.99, sum by (target, le) ({d(waits)}))", "target", at=end
        ),
        "pool_waits": prom.values(
            f"sum by (target) ({d('db_pool_wait_seconds_count')})", "target", at=end
        ),
        "pool_waits_over_10ms": prom.values(
            f"sum by (target) ({d('db_pool_wait_seconds_count')})"
            f" - sum by (target) ({d(quick_waits)})",
            "target",
            at=end,
        ),
    }
    return {
        "start": start,
        "end": end,
        "routes": routes,
        "modules": modules,
        "business": business,
        "counters": counters,
        "database": database,
    }


def _literal(replacement: str) -> Callable[[re.Match[str]], str]:
    """A ``re.sub`` replacement taken as it is (no backslash or group escapes)."""
    return lambda _match: replacement
