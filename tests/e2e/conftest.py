"""End-to-end: the server runs as its own process, started the way `make run` starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tools.pgstack import Stack, free_port

ROOT = Path(__file__).resolve().parents[2]
SERVER_START_CEILING = 180.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    stack: Stack, log: Path, *args: str, extra_env: dict[str, str] | None = None
) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_DATABASE_URL": stack.primary_url,
        "APP_REPLICA_DATABASE_URL": stack.replica_url,
        "APP_LOG_JSON": "true",
        **(extra_env or {}),
    }
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    # A generous ceiling: on a loaded machine importing the app alone can take many seconds.
    deadline = time.monotonic() + SERVER_START_CEILING
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{server.output()}")
        try:
            if httpx.get(server.base_url + "/healthz", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise AssertionError(
        f"server did not come up within {SERVER_START_CEILING:.0f}s:\n{server.output()}"
    )


def stop_server(server: Server) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture
def server(migrated: Stack, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(migrated, tmp_path / "server.log")
    yield srv
    stop_server(srv)
