"""Many app instances and separate outbox workers behind HAProxy (Debian's binary), on one port.

Every process reads the same databases (the local stack, or PgBouncer in front of it with
``--pooler``); the API instances run no dispatcher, the workers deliver the outbox. The tool
writes ``haproxy.cfg`` under ``var/scaled`` (or ``--dir``), starts everything, and stops all of it
when it is interrupted or when any process dies (one dead instance is a broken setup here, not
a failover to watch: the fault tests do that).

    python -m tools.scaled --instances 2 --workers 2 --port 8000 [--pooler]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tools.pgstack import REPO, local_stack
from tools.pooler import DEFAULT_PORT as DEFAULT_POOLER_PORT
from tools.pooler import Pooler

DEFAULT_DIR = REPO / "var" / "scaled"
START_CEILING = 180.0  # importing the app alone takes many seconds on a loaded machine
HAPROXY_HINT = "HAProxy was not found: Debian/Ubuntu: apt-get install haproxy"


class ScaledError(RuntimeError):
    """A process of the scaled setup did not start or died; the message says which."""


@dataclass
class Child:
    """One supervised process and its log."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    url: str | None = None  # where it answers /healthz, if it does
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_handle: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._log_handle = self.log.open("wb")
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=REPO, stdout=self._log_handle, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self, tail: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else ""

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None


def _answers(url: str, path: str = "/healthz") -> bool:
    try:
        with urllib.request.urlopen(url + path, timeout=5) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Scaled:
    """``instances`` API processes on ``instance_ports`` and one worker per ``worker_ports``
    entry (its metrics port), HAProxy on ``port`` in front of the API."""

    root: Path
    port: int
    instance_ports: list[int]
    worker_ports: list[int]
    env: dict[str, str]
    host: str = "127.0.0.1"
    children: list[Child] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def instance_urls(self) -> list[str]:
        return [f"http://{self.host}:{port}" for port in self.instance_ports]

    @property
    def worker_metrics_urls(self) -> list[str]:
        return [f"http://{self.host}:{port}" for port in self.worker_ports]

    def haproxy_config(self) -> str:
        servers = [
            f"    server app{i + 1} {self.host}:{port} check inter 2s fall 3 rise 1"
            for i, port in enumerate(self.instance_ports)
        ]
        return "\n".join(
            [
                "# written by tools/scaled.py",
                "global",
                "    maxconn 4096",
                "defaults",
                "    mode http",
                "    timeout connect 5s",
                "    timeout client 60s",
                "    timeout server 60s",
                "    timeout queue 30s",
                "frontend api",
                f"    bind {self.host}:{self.port}",
                # The app believes it only from APP_TRUSTED_PROXIES (set to this host below).
                "    option forwardfor",
                "    default_backend app",
                "backend app",
                "    balance roundrobin",
                # Alive, not /readyz: under load a readiness check that waits on the database
                # times out on every instance at once and HAProxy then answers 503 for all,
                # where the app itself would have served (or answered its own 503 with
                # Retry-After when the database is out of reach). A generous check timeout, so
                # a busy process is not taken for a dead one.
                "    option httpchk GET /healthz",
                "    http-check expect status 200",
                "    timeout check 10s",
                *servers,
                "",
            ]
        )

    def _children(self) -> list[Child]:
        python = sys.executable
        base = {
            **os.environ,
            **self.env,
            "APP_TRUSTED_PROXIES": f"{self.host}/32",
            "PYTHONUNBUFFERED": "1",
        }
        found = []
        for i, port in enumerate(self.instance_ports):
            env = {**base, "APP_EVENTS_DISPATCHER_ENABLED": "false"}
            command = [python, "-m", "app", "serve", "--host", self.host, "--port", str(port)]
            found.append(
                Child(
                    f"app{i + 1}",
                    command,
                    env,
                    self.root / f"app{i + 1}.log",
                    self.instance_urls[i],
                )
            )
        for i, port in enumerate(self.worker_ports):
            command = [python, "-m", "app", "worker", "--metrics-port", str(port)]
            found.append(Child(f"worker{i + 1}", command, base, self.root / f"worker{i + 1}.log"))
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            raise ScaledError(HAPROXY_HINT)
        cfg = self.root / "haproxy.cfg"
        found.append(
            Child("haproxy", [haproxy, "-db", "-f", str(cfg)], base, self.root / "haproxy.log")
        )
        return found

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "haproxy.cfg").write_text(self.haproxy_config(), encoding="utf-8")
        self.children = self._children()
        try:
            for child in self.children:
                child.start()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_CEILING
        pending = [c for c in self.children if c.url] + [None]  # None: the front door
        while pending:
            if dead := self.dead():
                raise ScaledError(f"{dead.name} exited:\n{dead.output()}")
            if time.monotonic() > deadline:
                names = [c.name if c else "haproxy's front" for c in pending]
                raise ScaledError(f"not answering within {START_CEILING:.0f}s: {names}")
            head = pending[0]
            if _answers(head.url if head and head.url else self.url):
                pending.pop(0)
            else:
                time.sleep(0.2)

    def dead(self) -> Child | None:
        return next((c for c in self.children if not c.alive()), None)

    def stop(self, grace: float = 30.0) -> None:
        # The front door first, so no request reaches a stopping instance; SIGINT lets uvicorn
        # finish what is in flight and a worker finish its deliveries.
        order = sorted(self.children, key=lambda c: c.name != "haproxy")
        for child in order:
            child.signal(signal.SIGINT if child.name != "haproxy" else signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in order:
            child.wait(deadline - time.monotonic())

    def __enter__(self) -> Scaled:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _database_env(args: argparse.Namespace) -> tuple[dict[str, str], Pooler | None]:
    stack = local_stack()
    if not args.pooler:
        env = {
            "APP_DATABASE_URL": stack.primary_url,
            "APP_REPLICA_DATABASE_URL": stack.replica_url,
            # Every replica the stack runs (PGSTACK_REPLICAS), each checked and routed to.
            "APP_REPLICA_DATABASE_URLS": ",".join(stack.replica_urls),
        }
        return env, None
    pooler = Pooler.for_stack(stack, Path(args.dir) / "pgbouncer", args.pooler_port)
    pooler.start()
    return pooler.app_env(), pooler


def supervise(scaled: Scaled) -> int:
    """Until Ctrl-C, SIGTERM or the death of any process; then everything stops."""
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        if dead := scaled.dead():
            print(f"{dead.name} exited; stopping everything:\n{dead.output()}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.scaled", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8000, help="HAProxy's port (default 8000)")
    parser.add_argument("--base-port", type=int, help="the first instance's port (default port+1)")
    parser.add_argument("--metrics-base-port", type=int, default=9101, help="the workers' metrics")
    parser.add_argument("--pooler", action="store_true", help="through PgBouncer (tools/pooler.py)")
    parser.add_argument(
        "--pooler-port", type=int, default=int(os.environ.get("POOLER_PORT") or DEFAULT_POOLER_PORT)
    )
    parser.add_argument("--dir", default=str(DEFAULT_DIR))
    args = parser.parse_args(argv)
    base = args.base_port or args.port + 1
    env, pooler = _database_env(args)
    scaled = Scaled(
        Path(args.dir),
        args.port,
        [base + i for i in range(args.instances)],
        [args.metrics_base_port + i for i in range(args.workers)],
        env,
    )
    try:
        scaled.start()
        print(f"HAProxy  {scaled.url}  ->  " + ", ".join(scaled.instance_urls))
        print("workers  metrics on " + ", ".join(scaled.worker_metrics_urls))
        if pooler:
            print(f"PgBouncer 127.0.0.1:{pooler.port} (transaction pooling)")
        print(f"logs     {scaled.root}/*.log   (Ctrl-C stops everything)")
        return supervise(scaled)
    except ScaledError as exc:
        print(f"scaled: {exc}", file=sys.stderr)
        return 1
    finally:
        scaled.stop()
        if pooler:
            pooler.stop()


if __name__ == "__main__":
    sys.exit(main())
