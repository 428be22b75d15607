"""A seeded server process and a real Prometheus scraping it, for the load test's runs.

The server runs on a database of its own in the session's cluster (seeded with the small
preset, as `make run` seeds), with the settings a load test from one address needs: every
per-account and per-address auth limit raised (all clients are 127.0.0.1) and cheap hashing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from alembic import command

from app.platform.config import Settings
from app.platform.db.migrations import alembic_config
from tests.e2e.conftest import Server, stop_server
from tests.helpers import replica_catch_up, require_tool
from tools import monitor
from tools.pgstack import Stack, free_port

ROOT = Path(__file__).resolve().parents[2]
LOAD_DB = "loadtest_run"
METRICS_TOKEN = "loadtest-metrics-token-0123456789"
# The platform.slow_responses hold: twice the 500 ms latency bound.
SLOW_SECONDS = 1.0


def raised_auth_limits() -> dict[str, str]:
    """Every auth limit counted per account or per address, out of a load test's way."""
    return {
        f"APP_{name.upper()}": "1000000"
        for name, field in Settings.model_fields.items()
        if name.startswith("auth_") and "_per_" in name and field.annotation is int
    }


@dataclass
class LoadStack:
    stack: Stack
    server: Server
    prometheus_url: str
    db: str

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "APP_ENV": "test",
            "APP_DATABASE_URL": self.stack.url(self.stack.primary_port, db=self.db),
            "APP_REPLICA_DATABASE_URL": self.stack.url(self.stack.replica_port, db=self.db),
        }

    def fault(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "app", "fault", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # Every process reads the switches each second: wait until the server runs with them.
        name = args[1] if args[0] == "on" and len(args) > 1 else None
        wanted = f'fault_active{{name="{name}"}} 1.0' if name else None
        deadline = time.monotonic() + 60
        while True:
            metrics = httpx.get(
                self.server.base_url + "/metrics",
                timeout=10,
                headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            ).text
            live = [
                line
                for line in metrics.splitlines()
                if line.startswith("fault_active{") and not line.endswith(" 0.0")
            ]
            if (wanted in live) if wanted else not live:
                return
            assert time.monotonic() < deadline, f"the server did not apply fault {args}: {live}"
            time.sleep(0.2)

    def run(self, out: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
        """``python -m loadtest`` against the server: exit status, output, result.json."""
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "loadtest",
                "--host",
                self.server.base_url,
                "--prometheus",
                self.prometheus_url,
                "--out",
                str(out),
                "--no-progress",
                *args,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        output = done.stdout + done.stderr
        path = out / "result.json"
        result = json.loads(path.read_text()) if path.exists() else {}
        return done.returncode, output, result


def start_server(stack: Stack, log: Path, extra_env: dict[str, str]) -> Server:
    """`python -m app serve` as tests/e2e starts it, with a ceiling for a machine this busy."""
    port = free_port()
    env = {**os.environ, "APP_ENV": "test", "APP_LOG_JSON": "true", **extra_env}
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited early:\n{server.output()}"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(server.base_url + "/healthz", timeout=5).status_code == 200:
                return server
        time.sleep(0.2)
    stop_server(server)
    raise AssertionError(f"server did not come up:\n{server.output()}")


@pytest.fixture(scope="module")
def load_stack(migrated: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadStack]:
    require_tool("prometheus", monitor.INSTALL_HINT)
    folder = tmp_path_factory.mktemp("loadtest")
    migrated.primary.psql(f"DROP DATABASE IF EXISTS {LOAD_DB} WITH (FORCE)")
    migrated.primary.psql(f"CREATE DATABASE {LOAD_DB} OWNER app")
    primary = migrated.url(migrated.primary_port, db=LOAD_DB)
    replica = migrated.url(migrated.replica_port, db=LOAD_DB)
    command.upgrade(alembic_config(primary), "head")
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_DATABASE_URL": primary,
        "APP_REPLICA_DATABASE_URL": replica,
    }
    seeded = subprocess.run(
        [sys.executable, "-m", "app", "seed", "--preset", "small"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    replica_catch_up(migrated, timeout=60)
    server_env = {
        "APP_DATABASE_URL": primary,
        "APP_REPLICA_DATABASE_URL": replica,
        "APP_METRICS_TOKEN": METRICS_TOKEN,
        "APP_EMAIL_BACKEND": "console",
        "APP_ACCESS_LOG": "false",
        "APP_AUTH_ARGON2_TIME_COST": "1",
        "APP_AUTH_ARGON2_MEMORY_KIB": "1024",
        "APP_AUTH_ARGON2_PARALLELISM": "1",
        "APP_FAULTS_SLOW_RESPONSE_SECONDS": str(SLOW_SECONDS),
        **raised_auth_limits(),
    }
    server = start_server(migrated, folder / "server.log", extra_env=server_env)
    try:
        port = free_port()
        config = monitor.render_prometheus_config(
            app_target=server.base_url.removeprefix("http://"),
            metrics_token=METRICS_TOKEN,
            prometheus_target=f"127.0.0.1:{port}",
            alertmanager_target=None,
            postgres_targets=None,
            scrape_interval="1s",
            evaluation_interval="1s",
            environment="loadtest-test",
        )
        config_path = folder / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        service = monitor.start_prometheus(config_path, folder / "data", port, folder / "prom.log")
        with monitor.running(service):
            yield LoadStack(migrated, server, service.url, LOAD_DB)
    finally:
        stop_server(server)
        migrated.primary.psql(f"DROP DATABASE IF EXISTS {LOAD_DB} WITH (FORCE)")
