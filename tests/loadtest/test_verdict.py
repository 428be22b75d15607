"""The load test's parts without a server: objectives from the rules, exact statistics, the open
model's schedule, the checks and their tolerances, the baseline's noise band, the PromQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest import baseline, slo
from loadtest.prom import over_window
from loadtest.recorder import Recorder
from loadtest.samples import Sample, grouped, percentile, stats
from loadtest.shape import Shape, Tally
from loadtest.verdict import (
    Tolerance,
    agreement_checks,
    business_checks,
    harness_checks,
    highest_rate,
    route_key,
    slo_checks,
    steps,
)
from tests.monitoring.stack import Prometheus, prometheus

OBJECTIVES = slo.load()


def sample(
    route: str = "/v1/products",
    *,
    elapsed: float = 0.01,
    status: int = 200,
    late: float = 0.0,
    at: float = 1000.0,
    step: str = "catalog",
) -> Sample:
    return Sample("GET", route, "browse", step, at, at + late, elapsed, status)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    shutil.copytree(slo.RULES_DIR, tmp_path / "rules")
    return tmp_path / "rules"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_the_objectives_are_the_rules_numbers(rules: Path) -> None:
    assert OBJECTIVES.availability_budget == 0.001
    assert OBJECTIVES.latency_bound_seconds == 0.5
    assert OBJECTIVES.latency_budget == 0.01
    assert (OBJECTIVES.checkout_success_min, OBJECTIVES.checkout_min_decided) == (0.95, 20)
    # Edit the single source and the load test judges by the new numbers.
    _edit(rules / "slo.yml", "/ 0.001 ", "/ 0.002 ")
    _edit(rules / "slo.yml", 'le="0.5"', 'le="0.25"')
    _edit(rules / "business.yml", "ratio_rate15m < 0.95", "ratio_rate15m < 0.9")
    edited = slo.load(rules)
    assert edited.availability_budget == 0.002
    assert edited.latency_bound_seconds == 0.25
    assert edited.checkout_success_min == 0.9


def test_a_rule_of_another_shape_is_refused_by_name(rules: Path) -> None:
    _edit(
        rules / "slo.yml",
        "module:slo_availability_errors:ratio_rate1h / 0.001 > 14.4",
        "module:slo_availability_errors:ratio_rate1h / 0.005 > 14.4",
    )
    with pytest.raises(slo.RulesChanged, match="AvailabilityErrorBudgetBurn"):
        slo.load(rules)


def test_percentiles_are_exact_order_statistics() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert percentile(values, 50) == 0.05
    assert percentile(values, 99) == 0.099
    # Locust rounds 1,234 ms to 1,200 in its percentiles; the samples keep it.
    s = stats([sample(elapsed=0.01)] * 99 + [sample(elapsed=1.234)], 0.5)
    assert s.max == 1.234
    assert s.p99 == 0.01
    assert s.slow == 1


def test_a_late_send_counts_against_the_response_time() -> None:
    # Sent 0.8 s after its intended time, answered in 0.1 s: the user waited 0.9 s.
    late = sample(elapsed=0.1, late=0.8)
    assert late.response_time == pytest.approx(0.9)
    s = stats([late], OBJECTIVES.latency_bound_seconds)
    assert s.slow == 1
    assert s.lag_p99 == pytest.approx(0.8)


def test_the_recorder_turns_locust_request_events_into_samples() -> None:
    class Response:
        status_code = 503

    recorder = Recorder()
    context = {
        "route": "/v1/checkout",
        "journey": "buyer",
        "step": "checkout tok_success",
        "intended": 10.0,
        "expect": (201,),
    }
    recorder("POST", "POST /v1/checkout", 250.0, Response(), context, None, 10.5)
    assert recorder.samples == []  # not recording: setup traffic is never a sample
    recorder.recording = True
    recorder("POST", "POST /v1/checkout", 250.0, Response(), context, None, 10.5)
    (s,) = recorder.samples
    assert (s.status, s.elapsed, s.lag, s.unexpected, s.module) == (
        503,
        0.25,
        0.5,
        True,
        "payments",
    )
    assert s.server_error
    assert s.error == "unexpected 503"


def test_arrivals_are_fixed_in_advance_by_the_shape() -> None:
    constant = list(Shape("constant", 2, 20).arrivals())
    assert len(constant) == 40
    assert constant[1] - constant[0] == 0.5
    step = Shape("step", 10, 50, steps=5)
    assert [w[2] for w in step.windows()] == [2, 4, 6, 8, 10]
    assert step.expected() == 10 * (2 + 4 + 6 + 8 + 10)


def test_slo_checks_name_the_module_and_the_slo() -> None:
    ok = [sample("/v1/analytics/events") for _ in range(2000)]
    bad = [sample("/v1/checkout", status=502)] + [sample("/v1/checkout") for _ in range(99)]
    checks = slo_checks(grouped(ok + bad, lambda s: s.module, 0.5), OBJECTIVES, "client")
    failed = {f"{c.name} {c.scope}" for c in checks if c.passed is False}
    assert failed == {"availability payments (client)"}
    slow = [sample("/v1/auth/me", elapsed=0.6)] * 2 + [sample("/v1/auth/me")] * 98
    checks = slo_checks(grouped(slow, lambda s: s.module, 0.5), OBJECTIVES, "client")
    assert {f"{c.name} {c.scope}" for c in checks if c.passed is False} == {"latency auth (client)"}


def test_the_highest_rate_is_the_last_step_before_a_breach() -> None:
    shape = Shape("step", 4, 40, steps=4)  # 1, 2, 3, 4 per second, 10 s each
    start = 1000.0
    samples = [sample(at=start + t, elapsed=0.02) for t in range(30)]
    samples += [sample(at=start + 30 + t / 10, elapsed=0.9) for t in range(20)]
    rows = steps(samples, shape, start, OBJECTIVES)
    assert [r["met"] for r in rows] == [True, True, True, False]
    assert highest_rate(rows) == 3


def _server(count: float, errors: float = 0, within: float | None = None) -> dict[str, Any]:
    row = {
        "count": count,
        "server_errors": errors,
        "within_bound": count if within is None else within,
    }
    return {"routes": {"payments /v1/products": row}}


def test_client_and_server_must_agree_within_the_tolerance() -> None:
    samples = [sample() for _ in range(500)]
    by_route = grouped(samples, route_key, 0.5)
    slow = {"payments /v1/products": 0.0}
    tolerance = Tolerance()
    assert all(c.passed for c in agreement_checks(by_route, slow, _server(497), tolerance))
    lost = agreement_checks(by_route, slow, _server(450), tolerance)
    assert [c.name for c in lost if not c.passed] == ["requests"]
    # The server saw 40 requests over the bound the client did not: one side is wrong.
    late = agreement_checks(by_route, slow, _server(500, within=460), tolerance)
    assert [c.name for c in late if not c.passed] == ["requests over the latency bound"]
    hidden = agreement_checks(by_route, slow, _server(500, errors=12), tolerance)
    assert [c.name for c in hidden if not c.passed] == ["5xx"]


def test_business_slis_are_judged_only_past_the_alerts_guards() -> None:
    few = [sample("/v1/checkout", status=402, step="checkout tok_declined")] * 5
    _, checks = business_checks(few, None, OBJECTIVES)
    (checkout,) = [c for c in checks if c.name == "checkout success"]
    assert checkout.value == 0
    assert checkout.passed is None
    many = few + [sample("/v1/checkout", status=201, step="checkout tok_success")] * 25
    _, checks = business_checks(many, None, OBJECTIVES)
    (checkout,) = [c for c in checks if c.name == "checkout success"]
    assert checkout.value == pytest.approx(25 / 30)
    assert checkout.passed is False


def test_dropped_arrivals_and_unexpected_answers_fail_the_harness() -> None:
    tally = Tally(scheduled=10, dropped=1)
    answers = [sample(status=200)] * 90 + [sample(status=429)] * 10
    for s in answers[90:]:
        s.unexpected = True
    failed = [c.name for c in harness_checks(answers, tally) if not c.passed]
    assert failed == ["arrivals dropped", "unexpected answers"]


def _result(p99: float, errors: float = 0.0) -> dict[str, Any]:
    figures = {"p95": p99 / 2, "p99": p99, "error_ratio": errors}
    return {
        "run": {"shape": {"kind": "constant", "rate": 5}},
        "total": figures,
        "endpoints": {"payments /v1/products": {"client": figures}},
    }


def test_the_baseline_fails_only_past_the_noise_band() -> None:
    band = baseline.make([_result(0.100), _result(0.110), _result(0.105)])
    assert band["bands"]["run"]["p99"] == {"low": 0.100, "high": 0.110}
    assert all(c.passed for c in baseline.compare(_result(0.118), band))  # within 0.110 + 0.010
    regressed = [c for c in baseline.compare(_result(0.200), band) if not c.passed]
    assert {c.scope for c in regressed} == {"run", "payments /v1/products"}
    with pytest.raises(ValueError, match="at least 2 runs"):
        baseline.make([_result(0.1)])


@pytest.fixture(scope="module")
def empty_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    folder = tmp_path_factory.mktemp("prometheus-loadtest")
    with prometheus(folder, {"global": {"scrape_interval": "1m"}}) as prom:
        yield prom


def test_every_recording_rule_rewritten_over_a_window_is_valid_promql(
    empty_prometheus: Prometheus,
) -> None:
    records = slo.recording_rules()
    for name, expr in records.items():
        rewritten = over_window(expr, records, 1_700_000_000.0, 1_700_000_060.0)
        assert "rate(" not in rewritten.replace("_rate", ""), (name, rewritten)
        resp = empty_prometheus.query(rewritten)
        assert resp.status_code == 200, f"{name}: {resp.text}\n{rewritten}"


def test_the_verdict_imports_neither_gevent_nor_locust() -> None:
    import sys

    # Locust monkey-patches the standard library on import: only the run's process may.
    assert "locust" not in sys.modules
    assert "gevent.monkey" not in sys.modules
