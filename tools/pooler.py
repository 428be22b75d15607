"""PgBouncer in transaction mode in front of the local primary and replicas (Debian's binary).

Writes ``pgbouncer.ini`` and its user list under ``var/pgbouncer`` (or ``--dir``), runs PgBouncer
as the ``postgres`` user when started as root (it refuses root), and hands the app the URLs that
go through it: database ``app`` is the primary, ``app_replica``, ``app_replica_2``, ... the
replicas; LISTEN and migrations keep the primary's own URL (``APP_DATABASE_DIRECT_URL``).

    python -m tools.pooler run [--port N] -- python -m app serve   # for the command's life
    python -m tools.pooler env [--port N]                          # the settings that use it
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.pgstack import APP_DB, APP_PASSWORD, APP_USER, REPO, SUPERUSER, Stack, local_stack

DEFAULT_DIR = REPO / "var" / "pgbouncer"
DEFAULT_PORT = 56432
INSTALL_HINT = "PgBouncer was not found: Debian/Ubuntu: apt-get install pgbouncer"


class PoolerError(RuntimeError):
    """PgBouncer could not be configured or started; the message says why."""


def find_pgbouncer() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if found is None:
        raise PoolerError(INSTALL_HINT)
    return found


def replica_ports(stack: Stack) -> list[int]:
    """The stack's replicas' ports: every replica when the stack runs several."""
    nodes = stack.replicas
    return [node.port for node in nodes]


def replica_database(index: int) -> str:
    """PgBouncer's name for the index-th replica (0-based): app_replica, app_replica_2, ..."""
    return f"{APP_DB}_replica" if index == 0 else f"{APP_DB}_replica_{index + 1}"


@dataclass
class Pooler:
    """One PgBouncer process: its folder, its port, and the servers it pools."""

    root: Path
    port: int
    primary_port: int
    replica_ports: list[int]
    # Server connections per (database, user): the most transactions each server runs at once.
    pool_size: int = 20
    reserve_pool_size: int = 5
    max_client_conn: int = 800
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def for_stack(
        cls,
        stack: Stack,
        root: Path,
        port: int,
        *,
        pool_size: int = 20,
        reserve_pool_size: int = 5,
        max_client_conn: int = 800,
    ) -> Pooler:
        return cls(
            root,
            port,
            stack.primary_port,
            replica_ports(stack),
            pool_size=pool_size,
            reserve_pool_size=reserve_pool_size,
            max_client_conn=max_client_conn,
        )

    # -- the app's view ------------------------------------------------------------------------
    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{APP_USER}:{APP_PASSWORD}@{self.host}:{self.port}/{database}"

    @property
    def primary_url(self) -> str:
        return self.url(APP_DB)

    @property
    def replica_urls(self) -> list[str]:
        return [self.url(replica_database(i)) for i in range(len(self.replica_ports))]

    def direct_url(self) -> str:
        return f"postgresql+asyncpg://{APP_USER}:{APP_PASSWORD}@{self.host}:{self.primary_port}/{APP_DB}"

    def app_env(self) -> dict[str, str]:
        """The settings that send the app's pools through PgBouncer and LISTEN around it."""
        env = {
            "APP_DATABASE_URL": self.primary_url,
            "APP_DATABASE_DIRECT_URL": self.direct_url(),
            "APP_DB_TRANSACTION_POOLER": "true",
        }
        if self.replica_urls:
            env["APP_REPLICA_DATABASE_URL"] = self.replica_urls[0]
            # Every pooled replica, each checked and routed to on its own.
            env["APP_REPLICA_DATABASE_URLS"] = ",".join(self.replica_urls)
        return env

    # -- configuration -------------------------------------------------------------------------
    @property
    def ini(self) -> Path:
        return self.root / "pgbouncer.ini"

    @property
    def log(self) -> Path:
        return self.root / "pgbouncer.log"

    def config_text(self) -> str:
        lines = ["; written by tools/pooler.py", "[databases]"]
        servers = [(APP_DB, self.primary_port)] + [
            (replica_database(i), port) for i, port in enumerate(self.replica_ports)
        ]
        for name, port in servers:
            lines.append(f"{name} = host={self.host} port={port} dbname={APP_DB}")
        settings = {
            "listen_addr": self.host,
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(self.root / "userlist.txt"),
            "pool_mode": "transaction",
            "default_pool_size": str(self.pool_size),
            "reserve_pool_size": str(self.reserve_pool_size),
            "reserve_pool_timeout": "3",
            "max_client_conn": str(self.max_client_conn),
            "server_check_query": "select 1",
            # No server_reset_query: the app leaves no statement behind (see
            # app/platform/db/pooling.py), and a reset would cost each transaction a round trip.
            "ignore_startup_parameters": "extra_float_digits",
            # Its log goes to stderr, which start() sends to the log file.
            "logfile": "",
            "pidfile": str(self.root / "pgbouncer.pid"),
            "log_connections": "0",
            "log_disconnections": "0",
            "stats_period": "60",
        }
        lines += ["", "[pgbouncer]", *(f"{key} = {value}" for key, value in settings.items())]
        return "\n".join(lines) + "\n"

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.ini.write_text(self.config_text(), encoding="utf-8")
        (self.root / "userlist.txt").write_text(f'"{APP_USER}" "{APP_PASSWORD}"\n', "utf-8")
        if os.geteuid() == 0:
            # PgBouncer runs as postgres: it reads both files and writes its log and pid here.
            account = pwd.getpwnam(SUPERUSER)
            os.chmod(self.root, 0o755)  # noqa: S103 - postgres must traverse it
            for path in (self.root, *self.root.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        return self.ini

    # -- process -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        self.write()
        command = [find_pgbouncer(), str(self.ini)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd="/")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PoolerError(f"pgbouncer exited ({self.process.returncode}):\n{self.output()}")
            with socket.socket() as probe:
                if probe.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise PoolerError(f"pgbouncer did not listen on {self.port} in {timeout:.0f}s")

    def output(self) -> str:
        return self.log.read_text(errors="replace").strip() if self.log.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT: PgBouncer's "safe shutdown" waits for clients; SIGTERM drops them at once.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Pooler:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def local_pooler(args: argparse.Namespace) -> Pooler:
    port = int(args.port or os.environ.get("POOLER_PORT") or DEFAULT_PORT)
    root = Path(args.dir or os.environ.get("POOLER_DIR") or DEFAULT_DIR)
    return Pooler.for_stack(local_stack(), root, port)


def run(pooler: Pooler, command: Sequence[str]) -> int:
    """PgBouncer for as long as ``command`` runs, the command pointed at it."""
    pooler.start()
    print(f"pgbouncer on {pooler.host}:{pooler.port} (transaction pooling, log {pooler.log})")
    env = {**os.environ, **pooler.app_env()}
    child = subprocess.Popen(list(command), env=env)

    def forward(_sig: int, _frame: object) -> None:
        # Ctrl-C reaches the whole process group anyway; SIGTERM (or a SIGINT sent to this
        # process alone) is passed on, so the command stops before PgBouncer does.
        if child.poll() is None:
            child.send_signal(signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    try:
        return child.wait()
    finally:
        pooler.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.pooler", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["run", "env", "config"])
    parser.add_argument("--port", type=int, help=f"default {DEFAULT_PORT}, or POOLER_PORT")
    parser.add_argument("--dir", help=f"default {DEFAULT_DIR}, or POOLER_DIR")
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="run: -- the command to run")
    args = parser.parse_args(argv)
    try:
        pooler = local_pooler(args)
        if args.command == "env":
            for key, value in pooler.app_env().items():
                print(f"{key}={value}")
        elif args.command == "config":
            print(pooler.config_text(), end="")
        else:
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not command:
                parser.error("run needs a command after --")
            return run(pooler, command)
    except PoolerError as exc:
        print(f"pooler: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
