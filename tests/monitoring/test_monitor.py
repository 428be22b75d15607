"""`make monitor`: the local Prometheus and Alertmanager start from the repository's files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.helpers import require_tool
from tools import monitor
from tools.pgstack import Stack, free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_local_config_is_valid_and_points_at_local_targets(tmp_path: Path) -> None:
    promtool = require_tool("promtool", monitor.INSTALL_HINT)
    prometheus_yml, alertmanager_yml = monitor.prepare(
        tmp_path, app="127.0.0.1:8000", metrics_token="local-token", prometheus_port=9090,
        alertmanager_port=9093, postgres_targets={"primary": "127.0.0.1:9187"},
    )  # fmt: skip
    config = yaml.safe_load(prometheus_yml.read_text("utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["app"]["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert jobs["app"]["authorization"]["credentials"] == "local-token"
    assert [s["labels"]["role"] for s in jobs["postgres"]["static_configs"]] == ["primary"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"
    ]
    # The rules are the repository's, copied so an edit does not change a running Prometheus.
    assert sorted(p.name for p in (tmp_path / "rules").glob("*.yml")) == sorted(
        p.name for p in monitor.RULES_DIR.glob("*.yml")
    )
    result = subprocess.run(
        [promtool, "check", "config", str(prometheus_yml)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    amtool = require_tool("amtool", monitor.INSTALL_HINT)
    result = subprocess.run(
        [amtool, "check-config", str(alertmanager_yml)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_monitor_starts_both_loads_the_rules_and_stops_on_ctrl_c(
    tmp_path: Path, pg_stack: Stack
) -> None:
    require_tool("prometheus", monitor.INSTALL_HINT)
    require_tool(monitor.ALERTMANAGER_BINARIES[0], monitor.INSTALL_HINT)
    prom_port, am_port = free_port(), free_port()
    log = tmp_path / "monitor.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.monitor", "--dir", str(tmp_path / "mon"),
             "--prometheus-port", str(prom_port), "--alertmanager-port", str(am_port),
             "--exporter-ports", f"{free_port()},{free_port()}",
             "--app", f"127.0.0.1:{free_port()}"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            # The exporters watch the databases `make db` would run: here, the session's pair.
            env={**os.environ, "APP_ENV": "test",
                 "PGSTACK_PRIMARY_PORT": str(pg_stack.primary_port),
                 "PGSTACK_REPLICA_PORT": str(pg_stack.replica_port)},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        printed = log.read_text()
        assert f"http://127.0.0.1:{prom_port}" in printed
        assert f"http://127.0.0.1:{am_port}" in printed

        groups = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=10).json()
        loaded = {group["name"] for group in groups["data"]["groups"]}
        assert {"availability", "http", "slo_availability", "business", "events"} <= loaded
        # Prometheus discovers its Alertmanager a moment after it is ready.
        deadline = time.monotonic() + 20
        while True:
            notifiers = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/alertmanagers", timeout=10)
            active = notifiers.json()["data"]["activeAlertmanagers"]
            if any(f":{am_port}/" in a["url"] for a in active) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert any(f":{am_port}/" in a["url"] for a in active), active
        assert httpx.get(f"http://127.0.0.1:{am_port}/-/ready", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()
    # Nothing is left listening once it stopped.
    for port in (prom_port, am_port):
        try:
            httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1)
        except httpx.TransportError:
            continue
        raise AssertionError(f"something still answers on {port} after Ctrl-C")
