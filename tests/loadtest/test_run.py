"""The load test against a real server process and a real Prometheus: a verdict that passes,
and one that a switched-on fault breaks, naming the SLO it broke."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from app.platform.middleware import SLOW_RESPONSES
from tests.loadtest.conftest import SLOW_SECONDS, LoadStack

pytestmark = pytest.mark.slow

# Short and gentle: 20 s at 2 arrivals per second, 15 members signed in before the window.
RUN = ("--rate", "2", "--duration", "20", "--members", "15", "--think", "0.2")
# The machine is shared and noisy: a run whose only failures are latency SLOs (a stall of the
# whole box shows as slow requests on both sides) is run again, at most this many times.
ATTEMPTS = 2
# Past this load average a 2-core box gives the server a fraction of a core: latency SLOs
# broken there (and agreed on by both sides) say more about the machine than about the code.
OVERLOADED = 2.5 * (os.cpu_count() or 1)


def _failed(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in result["checks"] if c["passed"] is False]


def test_a_healthy_server_passes_the_verdict_from_both_sides(
    load_stack: LoadStack, tmp_path: Path
) -> None:
    for attempt in range(ATTEMPTS):
        code, output, result = load_stack.run(tmp_path / f"run{attempt}", *RUN)
        assert result, output
        failed = _failed(result)
        # Anything but latency (errors, disagreement, the harness) fails the test at once.
        assert all(c["kind"] == "slo" and c["name"] == "latency" for c in failed), output
        if code == 0:
            break
    if code != 0:
        # Tolerated only on an overloaded machine, and only if the server saw the same.
        busy = max(result["run"]["load_average"][0], os.getloadavg()[0])
        assert busy > OVERLOADED, f"latency SLO broken at load average {busy}:\n{output}"
        sides = {c["scope"].rsplit(" ", 1)[1] for c in _failed(result)}
        assert sides == {"(client)", "(server)"}, output
    else:
        assert result["passed"]
        assert "VERDICT: PASS" in output
    checks = result["checks"]
    kinds = {c["kind"] for c in checks}
    assert {"slo", "agreement", "business", "harness"} <= kinds
    # Both sides judged every module the journeys reach, and agreed on every route.
    for side in ("client", "server"):
        scopes = {c["scope"] for c in checks if c["kind"] == "slo"}
        for module in ("auth", "payments", "notifications", "analytics"):
            assert f"{module} ({side})" in scopes
    agreement = [c for c in checks if c["kind"] == "agreement"]
    assert len(agreement) >= 30
    assert all(c["passed"] for c in agreement)
    # The open model sent every arrival, and the samples are exact (not two-digit buckets).
    tally = result["tally"]
    assert sum(tally["started"].values()) == tally["scheduled"] == 40
    assert tally["dropped"] == 0
    steps = set(result["journeys"]["signup"]["steps"]) if "signup" in result["journeys"] else set()
    assert not steps or {"signup", "open email", "verify email", "login"} <= steps
    out = tmp_path / f"run{attempt}"
    assert (out / "samples.csv").read_text().count("\n") == result["total"]["count"] + 1
    assert "<svg" in (out / "report.html").read_text()
    # The server's percentiles and database signals were read over the window.
    assert result["database"]["queries"].get("replica", 0) > 0
    assert result["server"]["routes"]["payments /v1/products"]["count"] > 0


def test_slow_responses_break_the_latency_slo_and_the_run_fails(
    load_stack: LoadStack, tmp_path: Path
) -> None:
    load_stack.fault("on", SLOW_RESPONSES.name, "--ratio", "1")
    try:
        code, output, result = load_stack.run(tmp_path / "slow", *RUN)
    finally:
        load_stack.fault("off")
    assert code == 1, output
    assert "VERDICT: FAIL" in output
    assert "latency" in output
    broken = result["broken"]
    for module in ("auth", "payments", "notifications", "analytics"):
        assert f"latency {module} (client)" in broken
        assert f"latency {module} (server)" in broken
    # Slow, not failing: availability held, and both sides still agree.
    assert not [c for c in _failed(result) if c["name"] != "latency"], output
    # Open model: the arrivals kept their schedule although every answer took over a second,
    # and the requests' response times carry the hold.
    tally = result["tally"]
    assert sum(tally["started"].values()) == tally["scheduled"] == 40
    assert result["total"]["p50"] >= SLOW_SECONDS
