"""The objectives a load test is judged by, parsed from the Prometheus rules (never restated).

``prometheus/rules/slo.yml`` is the single source of the SLOs: the availability budget is the
divisor of ``module:slo_availability_errors`` in its alerts, the latency bound the ``le`` of
``module:slo_latency_errors``' recording rule, its budget the divisor in the latency alerts. The
business thresholds and their traffic guards come from the alerts of ``business.yml``. A rule
whose shape no longer matches raises ``RulesChanged`` naming it, so an edit to the rules cannot
silently leave the load test judging by old numbers.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

RULES_DIR = Path(__file__).resolve().parent.parent / "prometheus" / "rules"
_NUMBER = r"([0-9]*\.?[0-9]+)"


class RulesChanged(ValueError):
    """A rule the load test reads no longer has the shape it parses."""


@dataclass(frozen=True)
class Objectives:
    availability_budget: float  # share of requests that may end in a 5xx
    latency_bound_seconds: float  # a request slower than this spends the latency budget
    latency_budget: float  # share of requests that may be slower than the bound
    checkout_success_min: float
    checkout_min_decided: int  # below this many decided checkouts the ratio is not judged
    signup_completion_min: float
    signup_min_started: int
    search_click_relative_min: float  # of the baseline ratio (here: the clicks the client sent)
    search_min_searches: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rule_groups(rules_dir: Path = RULES_DIR) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(rules_dir.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text("utf-8"))["groups"])
    return groups


def recording_rules(rules_dir: Path = RULES_DIR) -> dict[str, str]:
    """record name -> expression, over every rule file."""
    return {
        rule["record"]: rule["expr"]
        for group in rule_groups(rules_dir)
        for rule in group["rules"]
        if "record" in rule
    }


def _alerts(rules_dir: Path, name: str) -> list[dict[str, Any]]:
    found = [
        rule
        for group in rule_groups(rules_dir)
        for rule in group["rules"]
        if rule.get("alert") == name
    ]
    if not found:
        raise RulesChanged(f"no alert {name} in {rules_dir}")
    return found


def _one(pattern: str, text: str, what: str) -> float:
    values = {float(v) for v in re.findall(pattern, text)}
    if len(values) != 1:
        raise RulesChanged(f"{what}: expected one value matching {pattern!r}, found {values}")
    return values.pop()


def _budget(rules_dir: Path, alert: str, series: str) -> float:
    exprs = " ".join(rule["expr"] for rule in _alerts(rules_dir, alert))
    return _one(rf"{re.escape(series)}:ratio_rate\w+\s*/\s*{_NUMBER}", exprs, alert)


def _guard(expr: str, what: str) -> int:
    """The traffic guard ``rate >= N / window_seconds`` of a business alert: N events."""
    return int(_one(rf">=\s*{_NUMBER}\s*/\s*[0-9]+", expr, what))


def load(rules_dir: Path = RULES_DIR) -> Objectives:
    records = recording_rules(rules_dir)
    latency_expr = records.get("module:slo_latency_errors:ratio_rate5m")
    if latency_expr is None:
        raise RulesChanged("no recording rule module:slo_latency_errors:ratio_rate5m")
    (checkout,) = _alerts(rules_dir, "CheckoutSuccessRateLow")
    (signup,) = _alerts(rules_dir, "SignupCompletionRateLow")
    (search,) = _alerts(rules_dir, "SearchToClickRatioDropped")
    return Objectives(
        availability_budget=_budget(
            rules_dir, "AvailabilityErrorBudgetBurn", "module:slo_availability_errors"
        ),
        latency_bound_seconds=_one(r'le="([0-9.]+)"', latency_expr, "latency SLI"),
        latency_budget=_budget(rules_dir, "LatencyErrorBudgetBurn", "module:slo_latency_errors"),
        checkout_success_min=_one(rf"<\s*{_NUMBER}", checkout["expr"], "CheckoutSuccessRateLow"),
        checkout_min_decided=_guard(checkout["expr"], "CheckoutSuccessRateLow"),
        signup_completion_min=_one(rf"<\s*{_NUMBER}", signup["expr"], "SignupCompletionRateLow"),
        signup_min_started=_guard(signup["expr"], "SignupCompletionRateLow"),
        search_click_relative_min=_one(
            rf"<\s*on\s*\(job\)\s*{_NUMBER}\s*\*", search["expr"], "SearchToClickRatioDropped"
        ),
        search_min_searches=_guard(search["expr"], "SearchToClickRatioDropped"),
    )
