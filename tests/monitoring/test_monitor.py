"""`make monitor`: the local Prometheus and Alertmanager start from the repository's files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers import require_tool
from tools import monitor
from tools.pgstack import Stack, free_port

ROOT = Path(__file__).resolve().parents[2]
# Generous ceilings, polled: a busy machine gets time, a quick start costs nothing more.
START_CEILING = 180.0
STOP_CEILING = 240.0  # stopping four services takes up to 15 s each, and more when loaded


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


@dataclass
class Monitor:
    process: subprocess.Popen[bytes]
    log: Path
    prometheus_port: int
    alertmanager_port: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _group(pgid: int) -> set[int]:
    """The live processes of a process group (Linux's /proc), zombies left out."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.add(int(stat.parent.name))
    return members


def _wait_gone(pgid: int, ceiling: float = STOP_CEILING) -> set[int]:
    deadline = time.monotonic() + ceiling
    while (left := _group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@contextmanager
def make_monitor(tmp_path: Path, pg_stack: Stack) -> Iterator[Monitor]:
    """`make monitor` (python -m tools.monitor) in a process group of its own, until the block
    ends; then Ctrl-C, and whatever of the group is still there after a generous ceiling is
    killed: however the test ends (failed, timed out), nothing it started outlives it."""
    prom_port, am_port = free_port(), free_port()
    log = tmp_path / "monitor.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.monitor", "--dir", str(tmp_path / "mon"),
             "--prometheus-port", str(prom_port), "--alertmanager-port", str(am_port),
             "--exporter-ports", f"{free_port()},{free_port()}",
             "--app", f"127.0.0.1:{free_port()}"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            # The exporters watch the databases `make db` would run: here, the session's pair.
            env={**os.environ, "APP_ENV": "test",
                 "PGSTACK_PRIMARY_PORT": str(pg_stack.primary_port),
                 "PGSTACK_REPLICA_PORT": str(pg_stack.replica_port)},
        )  # fmt: skip
    try:
        yield Monitor(process, log, prom_port, am_port)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_CEILING)
        if _wait_gone(process.pid, ceiling=STOP_CEILING if process.poll() is None else 30):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            _wait_gone(process.pid)
        process.wait()


def _wait_started(monitor: Monitor) -> None:
    deadline = time.monotonic() + START_CEILING
    while "Ctrl-C" not in monitor.output():
        assert monitor.process.poll() is None, monitor.output()
        assert time.monotonic() < deadline, monitor.output()
        time.sleep(0.2)


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=5)
    except httpx.TransportError:
        return False
    return True


def test_make_monitor_starts_both_loads_the_rules_and_stops_on_ctrl_c(
    tmp_path: Path, pg_stack: Stack
) -> None:
    require_tool("prometheus", monitor.INSTALL_HINT)
    require_tool(monitor.ALERTMANAGER_BINARIES[0], monitor.INSTALL_HINT)
    with make_monitor(tmp_path, pg_stack) as mon:
        _wait_started(mon)
        prom_port, am_port = mon.prometheus_port, mon.alertmanager_port
        printed = mon.output()
        assert f"http://127.0.0.1:{prom_port}" in printed
        assert f"http://127.0.0.1:{am_port}" in printed

        groups = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=30).json()
        loaded = {group["name"] for group in groups["data"]["groups"]}
        assert {"availability", "http", "slo_availability", "business", "events"} <= loaded
        # Prometheus discovers its Alertmanager a moment after it is ready.
        deadline = time.monotonic() + START_CEILING
        while True:
            notifiers = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/alertmanagers", timeout=30)
            active = notifiers.json()["data"]["activeAlertmanagers"]
            if any(f":{am_port}/" in a["url"] for a in active) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert any(f":{am_port}/" in a["url"] for a in active), active
        assert httpx.get(f"http://127.0.0.1:{am_port}/-/ready", timeout=30).status_code == 200
        mon.process.send_signal(signal.SIGINT)
        code = mon.process.wait(timeout=STOP_CEILING)
        assert code == 0, mon.output()
        assert _wait_gone(mon.process.pid) == set()
    # Nothing is left listening once it stopped.
    for port in (prom_port, am_port):
        assert not _answers(port), f"something still answers on {port} after Ctrl-C"


class _Deliberate(Exception):
    pass


@pytest.mark.parametrize("how", ["test fails", "monitor killed"])
def test_nothing_outlives_a_failed_test_or_a_killed_monitor(
    tmp_path: Path, pg_stack: Stack, how: str
) -> None:
    """Prometheus, Alertmanager, both exporters and the monitor itself: all gone, whether the
    test fails while they run or the monitor dies without a chance to stop them (kill -9)."""
    require_tool("prometheus", monitor.INSTALL_HINT)
    require_tool(monitor.ALERTMANAGER_BINARIES[0], monitor.INSTALL_HINT)
    exporters = monitor.find_binary(monitor.EXPORTER_BINARIES) is not None
    with pytest.raises(_Deliberate), make_monitor(tmp_path, pg_stack) as mon:  # noqa: PT012
        _wait_started(mon)
        started = _group(mon.process.pid)
        names = {Path(f"/proc/{pid}/exe").resolve().name for pid in started}
        assert "prometheus" in names, names
        assert len(started) == 3 + (2 if exporters else 0), names  # monitor, 2 or 4 services
        if how == "monitor killed":
            mon.process.kill()
            mon.process.wait()
            # No one stops them in an orderly way now: they must go by themselves.
            assert _wait_gone(mon.process.pid) == set(), names
        raise _Deliberate  # the test body failing while everything runs
    assert _group(mon.process.pid) == set()
    assert mon.process.poll() is not None
    for port in (mon.prometheus_port, mon.alertmanager_port):
        assert not _answers(port), f"something still answers on {port}"
