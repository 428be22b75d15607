"""The verdict: the SLOs from both sides, the business SLIs, and the client-server agreement.

Every check has a kind: ``slo`` (availability and latency per module, from the client's samples
and from Prometheus), ``business`` (checkout success, signup completion, search-to-click),
``agreement`` (the client and the server saw the same requests, the same 5xx and the same
share over the latency bound, within ``Tolerance``), ``harness`` (the load test itself: no
dropped arrivals, journeys that got the answers they expected). A run passes when no check
failed; a check with too little traffic to judge (the business alerts' own guards) is reported
as not judged, neither passing nor failing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from loadtest.samples import Sample, Stats, grouped, stats
from loadtest.shape import Shape, Tally
from loadtest.slo import Objectives

UNEXPECTED_MAX = 0.01  # the load test's own bar for answers a journey did not expect


@dataclass(frozen=True)
class Tolerance:
    """How far the client's and the server's figures may differ and still agree.

    Counts: the client may see a request the server never recorded (a connection refused) and
    the server one the client gave up on, so ``count`` (relative) or ``count_floor`` (absolute),
    whichever is larger. Requests over the latency bound: ``slow_share`` of the route's requests
    or ``count_floor``, whichever is larger (the client's time includes the network and its own
    scheduling, so it reads a little slower than the server's).
    Percentiles are not compared strictly: the server's are interpolated within histogram
    buckets (a p99 between 0.25 s and 0.5 s can read anywhere in between), so they agree only to
    a bucket; the share at the bound, a bucket boundary, is exact on both sides.
    """

    count: float = 0.01
    count_floor: int = 2
    slow_share: float = 0.02


@dataclass
class Check:
    kind: str
    name: str
    scope: str
    value: float | None
    limit: float | None
    passed: bool | None  # None: not enough traffic to judge
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def slo_checks(by_module: dict[str, Stats], objectives: Objectives, side: str) -> list[Check]:
    checks = []
    bound_ms = objectives.latency_bound_seconds * 1000
    for module, s in by_module.items():
        checks.append(
            Check(
                "slo",
                "availability",
                f"{module} ({side})",
                s.error_ratio,
                objectives.availability_budget,
                s.error_ratio <= objectives.availability_budget,
                f"{s.server_errors} of {s.count} requests 5xx or unanswered",
            )
        )
        checks.append(
            Check(
                "slo",
                "latency",
                f"{module} ({side})",
                s.slow_ratio,
                objectives.latency_budget,
                s.slow_ratio <= objectives.latency_budget,
                f"{s.slow} of {s.count} requests over {bound_ms:g} ms",
            )
        )
    return checks


def server_slo_checks(server: dict[str, Any], objectives: Objectives) -> list[Check]:
    checks = []
    rules = (
        (
            "availability",
            "module:slo_availability_errors:ratio_rate5m",
            objectives.availability_budget,
        ),
        ("latency", "module:slo_latency_errors:ratio_rate5m", objectives.latency_budget),
    )
    for slo, rule, budget in rules:
        for module, value in sorted(server["modules"][rule].items()):
            if module == "platform":
                continue  # probes and scrapes: not the journeys' traffic
            checks.append(
                Check(
                    "slo",
                    slo,
                    f"{module} (server)",
                    value,
                    budget,
                    value <= budget,
                    f"{rule} over the run",
                )
            )
    return checks


def _client_business(samples: list[Sample]) -> dict[str, float]:
    def count(step_prefix: str, status: int) -> int:
        return sum(s.step.startswith(step_prefix) and s.status == status for s in samples)

    return {
        "checkouts_succeeded": count("checkout", 201),
        "checkouts_declined": count("checkout", 402),
        "checkouts_error": sum(s.step.startswith("checkout") and s.server_error for s in samples),
        "signups_started": count("signup", 202),
        "signups_verified": count("verify email", 200),
        "searches": count("search event", 202),
        "clicks": count("click event", 202),
    }


def business_checks(
    samples: list[Sample], server: dict[str, Any] | None, objectives: Objectives
) -> tuple[dict[str, float], list[Check]]:
    c = _client_business(samples)
    decided = c["checkouts_succeeded"] + c["checkouts_declined"] + c["checkouts_error"]
    sides: list[tuple[str, float, float, float]] = [
        (
            "client",
            _ratio(c["checkouts_succeeded"], decided),
            _ratio(c["signups_verified"], c["signups_started"]),
            _ratio(c["clicks"], c["searches"]),
        ),
    ]
    if server is not None:
        b = server["business"]
        sides.append(
            (
                "server",
                b["job:payments_checkouts_success:ratio_rate5m"],
                b["job:auth_signups_completion:ratio_rate1h"],
                b["job:analytics_search_click:ratio_rate1h"],
            )
        )
    sent_click_ratio = _ratio(c["clicks"], c["searches"])
    checks = []
    for side, checkout, signup, click in sides:
        rows = (
            (
                "checkout success",
                checkout,
                objectives.checkout_success_min,
                decided,
                objectives.checkout_min_decided,
                "decided checkouts",
            ),
            (
                "signup completion",
                signup,
                objectives.signup_completion_min,
                c["signups_started"],
                objectives.signup_min_started,
                "signups started",
            ),
            (
                "search-to-click",
                click,
                objectives.search_click_relative_min * sent_click_ratio,
                c["searches"],
                objectives.search_min_searches,
                "searches",
            ),
        )
        for name, value, limit, traffic, guard, what in rows:
            judged = traffic >= guard and math.isfinite(value)
            checks.append(
                Check(
                    "business",
                    name,
                    side,
                    value,
                    limit,
                    (value >= limit) if judged else None,
                    f"{traffic:g} {what} (judged from {guard})",
                )
            )
    return c, checks


def _within(client: float, server: float, tolerance: Tolerance) -> bool:
    return abs(client - server) <= max(tolerance.count_floor, tolerance.count * client)


def agreement_checks(
    by_route: dict[str, Stats],
    elapsed_slow: dict[str, float],
    server: dict[str, Any],
    tolerance: Tolerance,
) -> list[Check]:
    checks = []
    for key, s in by_route.items():
        seen = server["routes"].get(key, {})
        served = seen.get("count", 0.0)
        checks.append(
            Check(
                "agreement",
                "requests",
                key,
                s.count,
                served,
                _within(s.count, served, tolerance),
                "client count vs server count",
            )
        )
        errors = seen.get("server_errors", 0.0)
        checks.append(
            Check(
                "agreement",
                "5xx",
                key,
                s.server_errors,
                errors,
                _within(s.server_errors, errors, tolerance),
                "client 5xx and unanswered vs server 5xx",
            )
        )
        if served:
            server_slow = served - seen.get("within_bound", 0.0)
            client_slow = elapsed_slow[key]
            allowed = max(tolerance.count_floor, tolerance.slow_share * s.count)
            checks.append(
                Check(
                    "agreement",
                    "requests over the latency bound",
                    key,
                    client_slow,
                    server_slow,
                    abs(client_slow - server_slow) <= allowed,
                    f"client (send to answer) vs server; tolerance {allowed:g}",
                )
            )
    return checks


def harness_checks(samples: list[Sample], tally: Tally) -> list[Check]:
    unexpected = sum(s.unexpected and not s.server_error for s in samples)
    ratio = _ratio(unexpected, len(samples)) if samples else 0.0
    errors = sorted({f"{s.name}: {s.error}" for s in samples if s.unexpected})[:5]
    return [
        Check(
            "harness",
            "arrivals dropped",
            "open model",
            tally.dropped,
            0,
            tally.dropped == 0,
            "arrivals with no room in flight (raise --max-in-flight, or the rate is too high)",
        ),
        Check(
            "harness",
            "unexpected answers",
            "journeys",
            ratio,
            UNEXPECTED_MAX,
            ratio <= UNEXPECTED_MAX,
            "; ".join(errors),
        ),
    ]


def route_key(sample: Sample) -> str:
    return f"{sample.module} {sample.route}"


def steps(
    samples: list[Sample], shape: Shape, start: float, objectives: Objectives
) -> list[dict[str, Any]]:
    """Per stretch of a step shape: the client's SLO checks; which rates met every SLO."""
    rows = []
    for begin, end, rate in shape.windows():
        inside = [s for s in samples if begin <= s.intended - start < end]
        by_module = grouped(inside, lambda s: s.module, objectives.latency_bound_seconds)
        checks = slo_checks(by_module, objectives, "client")
        total = stats(inside, objectives.latency_bound_seconds)
        rows.append(
            {
                "rate": rate,
                "from": begin,
                "to": end,
                "requests": total.count,
                "p99": total.p99,
                "error_ratio": total.error_ratio,
                "slow_ratio": total.slow_ratio,
                "met": all(c.passed for c in checks),
                "broken": sorted({f"{c.name} {c.scope}" for c in checks if c.passed is False}),
            }
        )
    return rows


def highest_rate(rows: Iterable[dict[str, Any]]) -> float | None:
    """The highest step rate with it and every lower step meeting the SLOs."""
    best = None
    for row in rows:
        if not row["met"]:
            break
        best = row["rate"]
    return best
