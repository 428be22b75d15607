"""Alertmanager: pages and tickets reach the right receiver; inhibitions silence what they should.

Routes are checked with `amtool config routes test`; inhibitions with a real Alertmanager (Debian's
binary on a free port) that is sent the alerts and asked which ones it inhibited.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import require_tool
from tools import monitor
from tools.pgstack import free_port

CONFIG = monitor.ALERTMANAGER_CONFIG
HINT = "Debian/Ubuntu: apt-get install prometheus-alertmanager"


def _labels(alertname: str, severity: str, module: str | None = None) -> dict[str, str]:
    labels = {"alertname": alertname, "severity": severity}
    return labels | ({"module": module} if module else {})


ROUTES = [
    (_labels("CheckoutSuccessRateLow", "page", "payments"), "pager"),
    (_labels("AppTargetDown", "page", "platform"), "pager"),
    (_labels("LatencyP99High", "ticket", "payments"), "tickets-payments"),
    (_labels("SignupCompletionRateLow", "ticket", "auth"), "tickets-auth"),
    (_labels("NotificationDeliveriesFailing", "ticket", "notifications"), "tickets-notifications"),
    (_labels("SearchToClickRatioDropped", "ticket", "analytics"), "tickets-analytics"),
    (_labels("ReplicaLagHigh", "ticket", "platform"), "tickets-platform"),
    # A ticket from a module nobody registered still reaches a queue: the platform team's.
    (_labels("Something", "ticket", "billing"), "tickets-platform"),
    # Neither page nor ticket: the default receiver, never dropped.
    (_labels("Watchdog", "none"), "default"),
]


@pytest.mark.parametrize(
    ("labels", "receiver"),
    ROUTES,
    ids=[f"{labels['alertname']}-{receiver}" for labels, receiver in ROUTES],
)
def test_routes_by_severity_and_module(labels: dict[str, str], receiver: str) -> None:
    amtool = require_tool("amtool", HINT)
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={CONFIG}",
         f"--verify.receivers={receiver}", *(f"{k}={v}" for k, v in labels.items())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, f"{labels} went to {result.stdout.strip()}, not {receiver}"


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_tool(monitor.ALERTMANAGER_BINARIES[0], HINT)
    folder: Path = tmp_path_factory.mktemp("alertmanager")
    config = folder / "alertmanager.yml"
    config.write_text(CONFIG.read_text("utf-8"), encoding="utf-8")
    service = monitor.start_alertmanager(config, folder / "data", free_port(), folder / "log")
    with monitor.running(service):
        yield service.url


def _alert(**labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {"environment": "test", **labels},
        "annotations": {"summary": labels["alertname"]},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def _inhibited(url: str, sent: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Post the alerts, then: for each alert (by its test id), the alerts inhibiting it."""
    httpx.post(url + "/api/v2/alerts", json=sent, timeout=10).raise_for_status()
    wanted = {alert["labels"]["id"] for alert in sent}
    deadline = time.monotonic() + 60
    while True:
        alerts = httpx.get(url + "/api/v2/alerts", timeout=10).json()
        seen = {a["labels"]["id"]: a for a in alerts if a["labels"].get("id") in wanted}
        # Inhibition is computed as alerts arrive; give the sources a moment to register.
        if len(seen) == len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert seen.keys() == wanted, f"alertmanager lost alerts: {wanted - seen.keys()}"
    time.sleep(0.5)
    alerts = httpx.get(url + "/api/v2/alerts", timeout=10).json()
    return {
        a["labels"]["id"]: a["status"]["inhibitedBy"]
        for a in alerts
        if a["labels"].get("id") in wanted
    }


def test_replica_down_silences_replica_lag(alertmanager: str) -> None:
    down = _alert(id="r-down", alertname="ReplicaDown", severity="page", module="platform")
    lag = _alert(id="r-lag", alertname="ReplicaLagHigh", severity="ticket", module="platform")
    result = _inhibited(alertmanager, [down, lag])
    assert result["r-lag"], "ReplicaLagHigh was not inhibited by ReplicaDown"
    assert not result["r-down"]


def test_one_replica_down_leaves_another_replicas_lag_alert(alertmanager: str) -> None:
    labels = {"severity": "page", "module": "platform"}
    down = _alert(id="a-down", alertname="ReplicaDown", replica="replica-a:5432", **labels)
    labels["severity"] = "ticket"
    own = _alert(id="a-lag", alertname="ReplicaLagHigh", replica="replica-a:5432", **labels)
    other = _alert(id="b-lag", alertname="ReplicaLagHigh", replica="replica-b:5432", **labels)
    result = _inhibited(alertmanager, [down, own, other])
    assert result["a-lag"], "the down replica's lag alert was not inhibited"
    assert not result["b-lag"], "one replica down silenced another replica's lag alert"


def test_a_page_silences_the_ticket_of_the_same_slo_only(alertmanager: str) -> None:
    burn = "AvailabilityErrorBudgetBurn"
    result = _inhibited(alertmanager, [
        _alert(id="s-page", alertname=burn, severity="page", slo="availability",
               module="payments", window="1h"),
        _alert(id="s-ticket", alertname=burn, severity="ticket", slo="availability",
               module="payments", window="1d"),
        # Same module, another SLO: a different problem, still reported.
        _alert(id="s-latency", alertname="LatencyErrorBudgetBurn", severity="ticket",
               slo="latency", module="payments", window="1d"),
        # Same SLO, another module.
        _alert(id="s-auth", alertname=burn, severity="ticket", slo="availability",
               module="auth", window="1d"),
        # Not an SLO alert at all: a page of its module must not hide it.
        _alert(id="s-db", alertname="DBQueryP95High", severity="ticket", module="payments"),
    ])  # fmt: skip
    assert result["s-ticket"], "the availability ticket was not inhibited by its page"
    assert not result["s-latency"]
    assert not result["s-auth"]
    assert not result["s-db"]
    assert not result["s-page"]
