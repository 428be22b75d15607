"""`make monitor`: the repository's Prometheus and Alertmanager, run from Debian's binaries.

The compose files (prometheus/prometheus.yml, alertmanager/alertmanager.yml) name compose
services; this renders them for the developer's machine into var/monitoring/ (the app on
127.0.0.1:8000, the local primary and replica of tools/pgstack.py through postgres_exporter when it
is installed) and runs everything in the foreground until Ctrl-C. The tests start Prometheus and
Alertmanager through the same functions, so what they check is what `make monitor` runs.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools import demo_rules

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = REPO / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
DEFAULT_DIR = REPO / "var" / "monitoring"

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
EXPORTER_BINARIES = ("prometheus-postgres-exporter", "postgres_exporter")
INSTALL_HINT = "Debian/Ubuntu: apt-get install -y prometheus prometheus-alertmanager"


class MonitorError(RuntimeError):
    """A monitoring process could not be started; the message says why."""


def find_binary(names: tuple[str, ...]) -> str | None:
    for name in names:
        if path := shutil.which(name):
            return path
    return None


def render_prometheus_config(
    *,
    app_target: str | None,
    metrics_token: str,
    prometheus_target: str,
    alertmanager_target: str | None,
    postgres_targets: Mapping[str, str] | None = None,
    rule_files: list[str] | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    environment: str = "local",
    worker_target: str | None = None,
) -> dict[str, Any]:
    """prometheus/prometheus.yml with its compose targets replaced by local ones.

    A job whose target is None is dropped (no exporter installed, no Alertmanager in a test);
    `postgres_targets` maps the `role` label of the postgres job (primary, replica) to host:port.
    """
    config: dict[str, Any] = copy.deepcopy(yaml.safe_load(PROMETHEUS_CONFIG.read_text("utf-8")))
    glob = config.setdefault("global", {})
    glob.setdefault("external_labels", {})["environment"] = environment
    if scrape_interval:
        glob["scrape_interval"] = scrape_interval
        # A scrape may not outlast its interval; Prometheus refuses the config otherwise.
        glob["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        glob["evaluation_interval"] = evaluation_interval
    config["rule_files"] = rule_files if rule_files is not None else [str(RULES_DIR / "*.yml")]
    if alertmanager_target is None:
        config.pop("alerting", None)
    else:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]
        }

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    missing = {"app", "prometheus", "alertmanager", "postgres"} - jobs.keys()
    if missing:
        raise MonitorError(f"{PROMETHEUS_CONFIG} has no scrape job {sorted(missing)}")
    targets = {
        "app": app_target,
        "prometheus": prometheus_target,
        "alertmanager": alertmanager_target,
    }
    for name, target in targets.items():
        if target is not None:
            jobs[name]["static_configs"] = [{"targets": [target]}]
    if app_target is not None:
        jobs["app"]["authorization"] = {"type": "Bearer", "credentials": metrics_token}
    postgres_static = []
    for static in jobs["postgres"]["static_configs"]:
        role = static.get("labels", {}).get("role")
        if postgres_targets and role in postgres_targets:
            postgres_static.append({**static, "targets": [postgres_targets[role]]})
    jobs["postgres"]["static_configs"] = postgres_static
    config["scrape_configs"] = [
        job
        for name, job in jobs.items()
        if job["static_configs"] and targets.get(name, "kept") is not None
    ]
    if worker_target is not None:
        # `python -m app worker --metrics-port`: the periodic jobs' and the canary's metrics.
        config["scrape_configs"].append(
            {"job_name": "worker", "static_configs": [{"targets": [worker_target]}]}
        )
    return config


def render_alertmanager_config(smtp_smarthost: str = "127.0.0.1:1025") -> dict[str, Any]:
    """alertmanager/alertmanager.yml with the compose mail catcher replaced by a local one."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text("utf-8"))
    config.setdefault("global", {})["smtp_smarthost"] = smtp_smarthost
    return config


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when the process that started us dies,
    however it dies (kill -9 included), so no Prometheus or exporter outlives `make monitor`."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _spawn(
    name: str, cmd: list[str], url: str, log: Path, env: dict[str, str] | None = None
) -> Service:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as handle:
        process = subprocess.Popen(
            cmd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            # The monitor starts no threads, so a preexec function is safe here.
            preexec_fn=_die_with_parent,
        )
    return Service(name, process, url, log)


def start_prometheus(config: Path, data: Path, port: int, log: Path) -> Service:
    binary = find_binary(PROMETHEUS_BINARIES)
    if binary is None:
        raise MonitorError(f"prometheus is not installed ({INSTALL_HINT})")
    data.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        # POST /-/reload picks up edited rules without losing the scraped history.
        "--web.enable-lifecycle",
    ]
    return _spawn("prometheus", cmd, f"http://127.0.0.1:{port}", log)


def start_alertmanager(config: Path, data: Path, port: int, log: Path) -> Service:
    binary = find_binary(ALERTMANAGER_BINARIES)
    if binary is None:
        raise MonitorError(f"alertmanager is not installed ({INSTALL_HINT})")
    data.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary,
        f"--config.file={config}",
        f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        # A single node: no gossip port to collide with another worktree's Alertmanager.
        "--cluster.listen-address=",
    ]
    return _spawn("alertmanager", cmd, f"http://127.0.0.1:{port}", log)


def start_postgres_exporter(dsn: str, port: int, log: Path) -> Service:
    binary = find_binary(EXPORTER_BINARIES)
    if binary is None:
        raise MonitorError(
            "postgres_exporter is not installed (Debian: prometheus-postgres-exporter)"
        )
    cmd = [binary, f"--web.listen-address=127.0.0.1:{port}"]
    return _spawn(
        "postgres_exporter", cmd, f"http://127.0.0.1:{port}", log, {"DATA_SOURCE_NAME": dsn}
    )


# Generous: on a loaded machine Prometheus may need a long while to open its TSDB and load the
# rules; readiness is polled, so a quick start costs nothing more.
READY_CEILING = 180.0


def wait_ready(service: Service, path: str = "/-/ready", timeout: float = READY_CEILING) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise MonitorError(f"{service.name} exited early:\n{service.output()}")
        try:
            with urllib.request.urlopen(service.url + path, timeout=5) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    stop(service)
    raise MonitorError(f"{service.name} not ready within {timeout}s:\n{service.output()}")


def stop(service: Service) -> int:
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
    return service.process.returncode


@contextmanager
def running(service: Service, ready_path: str = "/-/ready") -> Iterator[Service]:
    try:
        wait_ready(service, ready_path)
        yield service
    finally:
        stop(service)


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def prepare(
    folder: Path,
    *,
    app: str,
    metrics_token: str,
    prometheus_port: int,
    alertmanager_port: int,
    postgres_targets: Mapping[str, str] | None,
    worker: str | None = None,
    demo: bool = False,
) -> tuple[Path, Path]:
    """Write the local Prometheus and Alertmanager configs (and a copy of the rules) into folder.

    ``demo``: scrape and evaluate every few seconds, with the rules' windows scaled down
    (tools/demo_rules.py), so an alert fires within minutes for a room.
    """
    rules = folder / "rules"
    shutil.rmtree(rules, ignore_errors=True)
    if demo:
        demo_rules.write_demo_rules(RULES_DIR, rules)
    else:
        shutil.copytree(RULES_DIR, rules)
    prometheus = render_prometheus_config(
        app_target=app,
        metrics_token=metrics_token,
        prometheus_target=f"127.0.0.1:{prometheus_port}",
        alertmanager_target=f"127.0.0.1:{alertmanager_port}",
        postgres_targets=postgres_targets,
        rule_files=[str(rules / "*.yml")],
        scrape_interval=demo_rules.INTERVAL if demo else None,
        evaluation_interval=demo_rules.INTERVAL if demo else None,
        worker_target=worker,
    )
    return (
        _write_yaml(folder / "prometheus.yml", prometheus),
        _write_yaml(folder / "alertmanager.yml", render_alertmanager_config()),
    )


def default_app_target(env: Mapping[str, str], app_port: int) -> str:
    """MONITOR_APP, else the port the app's settings serve on (APP_PORT, as `make run` does)."""
    return env.get("MONITOR_APP") or f"127.0.0.1:{app_port}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.monitor", description=__doc__)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--app", default=None, help="host:port (default MONITOR_APP, else the app's APP_PORT)"
    )
    parser.add_argument(
        "--worker",
        default=os.environ.get("MONITOR_WORKER") or None,
        help="host:port of `python -m app worker --metrics-port` (default: not scraped)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        default=os.environ.get("DEMO", "") not in ("", "0"),
        help="scrape and evaluate every 2 s, the rules' windows and for: scaled down 30x",
    )
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--alertmanager-port", type=int, default=9093)
    parser.add_argument("--exporter-ports", default="9187,9188", help="primary,replica")
    args = parser.parse_args(argv)

    from app.platform.config import get_settings
    from tools.pgstack import local_stack

    settings = get_settings()
    args.app = args.app or default_app_target(os.environ, settings.port)
    stack = local_stack()
    folder: Path = args.dir.resolve()
    exporters: dict[str, tuple[int, str]] = {}
    if find_binary(EXPORTER_BINARIES):
        primary_port, replica_port = (int(p) for p in args.exporter_ports.split(","))
        for role, port, db_port in (
            ("primary", primary_port, stack.primary_port),
            ("replica", replica_port, stack.replica_port),
        ):
            dsn = f"postgresql://app@127.0.0.1:{db_port}/postgres?sslmode=disable"
            exporters[role] = (port, dsn)
    prometheus_yml, alertmanager_yml = prepare(
        folder,
        app=args.app,
        metrics_token=settings.metrics_token.get_secret_value(),
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        postgres_targets={role: f"127.0.0.1:{port}" for role, (port, _) in exporters.items()},
        worker=args.worker,
        demo=args.demo,
    )

    # SIGTERM (a supervisor, a test cleaning up) stops everything the way Ctrl-C does; and so
    # does SIGINT even when started from a script in the background, which ignores it (Python
    # then installs no handler of its own).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    with ExitStack() as stack_of_services:
        try:
            for role, (port, dsn) in exporters.items():
                exporter = start_postgres_exporter(dsn, port, folder / f"exporter-{role}.log")
                stack_of_services.enter_context(running(exporter, "/metrics"))
            alertmanager = start_alertmanager(
                alertmanager_yml, folder / "alertmanager-data", args.alertmanager_port,
                folder / "alertmanager.log",
            )  # fmt: skip
            stack_of_services.enter_context(running(alertmanager))
            prometheus = start_prometheus(
                prometheus_yml, folder / "prometheus-data", args.prometheus_port,
                folder / "prometheus.log",
            )  # fmt: skip
            stack_of_services.enter_context(running(prometheus))
        except MonitorError as exc:
            print(exc, file=sys.stderr)
            return 1
        print("")
        print(f"  Prometheus    {prometheus.url}   (targets: {prometheus.url}/targets)")
        print(f"  alerts        {prometheus.url}/alerts")
        print(f"  Alertmanager  {alertmanager.url}")
        print(f"  scraping      the app on {args.app}" + (
            f", postgres_exporter for the primary ({stack.primary_port}) and replica "
            f"({stack.replica_port})" if exporters else
            "; no postgres_exporter installed (Debian: prometheus-postgres-exporter), "
            "so the database panels stay empty"
        ))  # fmt: skip
        if args.worker:
            print(f"  worker        {args.worker}")
        if args.demo:
            print(
                f"  demo mode     scrape and evaluation every {demo_rules.INTERVAL}, windows and "
                f"for: divided by {demo_rules.FACTOR:.0f} (copies in {folder / 'rules'})"
            )
        print(f"  config, logs  {folder}")
        print("  Ctrl-C stops them (`make run` and `make db` start the app and the databases)")
        print("")
        try:
            while all(s.process.poll() is None for s in (prometheus, alertmanager)):
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
        dead = [s for s in (prometheus, alertmanager) if s.process.poll() is not None]
        for service in dead:
            print(f"{service.name} exited:\n{service.output()[-2000:]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
