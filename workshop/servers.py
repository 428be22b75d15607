"""App server processes for a scenario's variants, on the workshop's stack, stopped for sure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tools.pgstack import free_port
from workshop.core import Context

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def server_env(ctx: Context, overrides: Mapping[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "workshop",
        "APP_DATABASE_URL": ctx.primary_url,
        "APP_REPLICA_DATABASE_URL": ctx.replica_url,
        "APP_LOG_JSON": "true",
        "APP_ACCESS_LOG": "false",
        "APP_PAYMENTS_FAKE_PROVIDER_LATENCY_MS": "0",
        # The room's traffic logs many users in from one address.
        "APP_AUTH_LOGIN_FAILURES_PER_IP": "100000",
        "APP_AUTH_RESET_REQUESTS_PER_IP": "100000",
        **overrides,
    }


def start(
    name: str,
    ctx: Context,
    *,
    env: Mapping[str, str] | None = None,
    variants: tuple[str, ...] = (),
    ready_timeout: float = 120.0,
) -> Server:
    port = free_port()
    logs = ctx.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    command = [sys.executable, "-m", "workshop.serve", "--port", str(port)]
    for variant in variants:
        command += ["--variant", variant]
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command, cwd=ROOT, env=server_env(ctx, env or {}), stdout=handle, stderr=handle
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server {name} exited early:\n{server.output()[-4000:]}")
        try:
            if httpx.get(server.base_url + "/readyz", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(server)
    raise RuntimeError(f"server {name} not ready within {ready_timeout:.0f}s")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=30)


@contextmanager
def serving(ctx: Context, specs: Mapping[str, dict[str, object]]) -> Iterator[dict[str, Server]]:
    """One server per spec (``env``, ``variants``); every one started is stopped, come what may."""
    started: dict[str, Server] = {}
    try:
        for name, spec in specs.items():
            started[name] = start(name, ctx, **spec)  # type: ignore[arg-type]
        yield started
    finally:
        for server in started.values():
            stop(server)
