"""C's watchers: the canary's worker, a demo-mode Prometheus, and a thread that times the alerts.

The Prometheus is `make monitor DEMO=1`'s (tools/monitor.py and tools/demo_rules.py: 2 s
scrapes and evaluations, the repository's rules with their windows scaled down), scraping the
scenario's app server and its worker.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from app.platform.config import DEV_METRICS_TOKEN
from tools import demo_rules, monitor
from tools.pgstack import free_port
from workshop import servers
from workshop.core import Context

ROOT = Path(__file__).resolve().parents[2]
ALERT = "CanaryPayloadMismatch"


@contextmanager
def prometheus(ctx: Context, app: str, worker: str) -> Iterator[str]:
    """A demo-mode Prometheus on the app and the worker; yields its URL."""
    # Absolute: Prometheus reads rule_files relative to its config file's folder.
    folder = (ctx.out / "C-prometheus").resolve()
    rules = folder / "rules"
    demo_rules.write_demo_rules(monitor.RULES_DIR, rules)
    port = free_port()
    config = monitor.render_prometheus_config(
        app_target=app,
        metrics_token=DEV_METRICS_TOKEN,
        prometheus_target=f"127.0.0.1:{port}",
        alertmanager_target=None,
        rule_files=[str(rules / "*.yml")],
        scrape_interval=demo_rules.INTERVAL,
        evaluation_interval=demo_rules.INTERVAL,
        environment="workshop",
        worker_target=worker,
    )
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    service = monitor.start_prometheus(path, folder / "data", port, folder / "prometheus.log")
    with monitor.running(service):
        yield service.url


def canary_env(base_url: str, admin: str, users: list[str], password: str) -> dict[str, str]:
    return {
        "APP_CANARY_BASE_URL": base_url,
        "APP_CANARY_ADMIN_EMAIL": admin,
        "APP_CANARY_USER_EMAILS": ",".join(users),
        "APP_CANARY_PASSWORD": password,
        # A room's pace: a check every 3 s (the shipped default is 30 s).
        "APP_CANARY_INTERVAL_SECONDS": "3",
        "APP_CANARY_SETTLE_SECONDS": "0.5",
    }


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    metrics_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def checks(self) -> dict[str, float]:
        """canary_checks_total by outcome, read from the worker's own metrics port."""
        try:
            text = httpx.get(self.metrics_url, timeout=5).text
        except httpx.TransportError:
            return {}
        found = re.findall(r'^canary_checks_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
        return {outcome: float(value) for outcome, value in found}


@contextmanager
def worker(ctx: Context, port: int, env: Mapping[str, str]) -> Iterator[Worker]:
    """`python -m app worker --metrics-port PORT` with the canary's settings; stopped for sure."""
    log = ctx.out / "logs" / "C-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "app", "worker", "--metrics-port", str(port)]
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command, cwd=ROOT, env=servers.server_env(ctx, env), stdout=handle, stderr=handle
        )
    running = Worker(process, f"http://127.0.0.1:{port}/metrics", log)
    try:
        yield running
    finally:
        servers.stop(servers.Server("C-worker", process, "", log))


def wait_first_check(running: Worker, timeout: float = 180.0) -> None:
    """Until the canary has finished a consistent check (it logged in and found its product)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"the worker exited:\n{running.output()[-4000:]}")
        if running.checks().get("ok", 0) >= 1:
            return
        time.sleep(0.5)
    raise RuntimeError(f"no canary check finished in {timeout:.0f}s:\n{running.output()[-4000:]}")


@dataclass
class AlertWatch:
    """Polls Prometheus's alerts every second; remembers when each alert was first seen, how."""

    url: str
    seen: dict[tuple[str, str], float] = field(default_factory=dict)
    firing: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> AlertWatch:
        self._thread = threading.Thread(target=self._poll, name="C-alerts", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _poll(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    alerts = client.get(self.url + "/api/v1/alerts").json()["data"]["alerts"]
                except (httpx.HTTPError, ValueError, KeyError):
                    self.errors += 1
                else:
                    now = time.monotonic()
                    for alert in alerts:
                        name, state = alert["labels"]["alertname"], alert["state"]
                        self.seen.setdefault((name, state), now)
                        if state == "firing":
                            self.firing.setdefault(name, alert)
                self._stop.wait(1.0)

    def first(self, name: str, state: str) -> float | None:
        return self.seen.get((name, state))

    def names_firing(self) -> list[str]:
        return sorted(self.firing)


def query(url: str, expr: str) -> float | None:
    """One instant query's first value (None: no data)."""
    resp = httpx.get(url + "/api/v1/query", params={"query": expr}, timeout=10)
    result = resp.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def prometheus_view(url: str) -> dict[str, object]:
    """What Prometheus saw over the run: its targets, the app's 5xx, the canary's consistency."""
    up = httpx.get(url + "/api/v1/query", params={"query": "up"}, timeout=10).json()
    return {
        "targets_up": {r["metric"]["job"]: r["value"][1] for r in up["data"]["result"]},
        "app_5xx_seen_by_prometheus": query(
            url,
            'sum(increase(http_requests_total{job="app",status=~"5.."}[15m])) or vector(0)',
        ),
        "app_requests_seen_by_prometheus": query(
            url, 'sum(increase(http_requests_total{job="app"}[15m]))'
        ),
        # The worker has stopped by now: the last value its series had.
        "canary_reads_seen_by_prometheus": query(
            url, 'sum(max_over_time(canary_reads_total{job="worker"}[15m]))'
        ),
        "canary_mismatches_seen_by_prometheus": query(
            url, 'sum(max_over_time(canary_mismatches_total{job="worker"}[15m]))'
        ),
    }


def wait_for_fault(base_url: str, name: str, ratio: float, timeout: float = 120.0) -> None:
    """Until the server runs with ``name`` at ``ratio`` (its ``fault_active`` gauge says so)."""
    wanted = re.compile(rf'^fault_active\{{name="{re.escape(name)}"\}} {ratio:g}(\.0)?$', re.M)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted.search(httpx.get(base_url + "/metrics", timeout=10).text):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not pick up {name} at {ratio} within {timeout:.0f}s")
