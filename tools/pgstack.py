"""A local PostgreSQL primary and streaming replica, without Docker.

The same code serves the developer's stack (``make run``: data under ``var/pg`` of the repo,
ports 55432 / 55433, reused between runs) and the test session (a temporary folder, free
ports, thrown away at the end). Standard library only: it runs before any virtualenv exists.

    python -m tools.pgstack start|stop|status|clean|env [--dir DIR]
                            [--primary-port N] [--replica-port N]
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / "var" / "pg"
DEFAULT_PRIMARY_PORT = 55432
DEFAULT_REPLICA_PORT = 55433
SUPERUSER = "postgres"
APP_USER = "app"
APP_PASSWORD = "app"  # noqa: S105 - a local throwaway cluster that listens on loopback only
APP_DB = "app"
SLOT = "replica1"
# The database audit's monitoring role (python -m app db audit): statistics, their reset, and
# membership of the app's role so --verify may build an index on the app's tables.
AUDIT_USER = "app_audit"
AUDIT_PASSWORD = "app_audit"  # noqa: S105 - loopback-only local cluster, like APP_PASSWORD

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, postgres) were not found on PATH "
    "or under /usr/lib/postgresql/*/bin.\n"
    "Install them:  Debian/Ubuntu: sudo apt-get install -y postgresql  "
    "(or postgresql-15)\n"
    "               macOS:         brew install postgresql@15\n"
    "or point PG_BIN at the folder that holds them."
)


class StackError(RuntimeError):
    """The local database stack could not do what was asked; the message says why."""


def find_bin_dir() -> Path:
    """The folder holding the PostgreSQL server binaries (PG_BIN, PATH, then Debian's layout)."""
    if env := os.environ.get("PG_BIN"):
        if (Path(env) / "pg_ctl").exists():
            return Path(env)
        raise StackError(f"PG_BIN={env} holds no pg_ctl.\n{INSTALL_HINT}")
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    raise StackError(INSTALL_HINT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run(
    cmd: list[str], *, check: bool = True, quiet: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool; as root, as the ``postgres`` user (the server refuses root)."""
    if _as_root():
        cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")
    if check and proc.returncode != 0:
        raise StackError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stdout}{proc.stderr}".rstrip()
        )
    if not quiet and proc.returncode == 0 and os.environ.get("PGSTACK_VERBOSE"):
        sys.stderr.write(proc.stdout + proc.stderr)
    return proc


def _give_to_postgres(path: Path) -> None:
    """As root, hand a folder to the postgres user, and check that user can reach it."""
    if not _as_root():
        return
    pw = pwd.getpwnam(SUPERUSER)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    probe = subprocess.run(["runuser", "-u", SUPERUSER, "--", "test", "-w", str(path)], check=False)
    if probe.returncode != 0:
        raise StackError(
            f"the postgres user cannot reach {path}: a parent folder is closed to other users. "
            f"Set PGSTACK_DIR to a folder it can reach (for example /tmp/pgstack)."
        )


@dataclass
class Node:
    """One PostgreSQL server: a data folder and a port."""

    name: str
    data: Path
    port: int
    bin_dir: Path

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.name}.log"

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def exists(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.exists():
            return False
        return (
            _run(
                [self.tool("pg_ctl"), "status", "-D", str(self.data)], check=False, quiet=True
            ).returncode
            == 0
        )

    def start(self) -> None:
        if self.running():
            return
        _run(
            [
                self.tool("pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                f"-p {self.port}",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            _run([self.tool("pg_ctl"), "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data)])

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = _run(
            [
                self.tool("psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                db,
                "-c",
                sql,
            ]
        )
        return out.stdout.strip()


@dataclass
class Stack:
    """A primary and a streaming replica under one folder."""

    root: Path
    primary_port: int
    replica_port: int
    fast: bool = False  # fsync off: for throwaway test clusters only
    bin_dir: Path = field(default_factory=find_bin_dir)

    def __post_init__(self) -> None:
        self.primary = Node("primary", self.root / "primary", self.primary_port, self.bin_dir)
        self.replica = Node("replica", self.root / "replica", self.replica_port, self.bin_dir)

    # -- URLs --------------------------------------------------------------------------------
    def url(self, port: int, db: str = APP_DB, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{port}/{db}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)

    @property
    def audit_url(self) -> str:
        return f"postgresql://{AUDIT_USER}:{AUDIT_PASSWORD}@127.0.0.1:{self.primary_port}/{APP_DB}"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create what is missing, then start both nodes. Existing data is reused."""
        self.root.mkdir(parents=True, exist_ok=True)
        if _as_root():
            os.chmod(self.root, 0o755)  # noqa: S103 - the postgres user must traverse it
        _give_to_postgres(self.root)
        if not self.primary.exists():
            self._init_primary()
        self.primary.start()
        self._ensure_audit_role()
        if not self.replica.exists():
            self._init_replica()
        self.replica.start()
        self._wait_streaming()

    def stop(self) -> None:
        # The replica first: stopping the primary first makes the replica log reconnect errors.
        self.replica.stop()
        self.primary.stop()

    def clean(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def status(self) -> dict[str, bool]:
        return {"primary": self.primary.running(), "replica": self.replica.running()}

    # -- creation ----------------------------------------------------------------------------
    def _init_primary(self) -> None:
        node = self.primary
        node.data.mkdir(parents=True, exist_ok=True)
        _give_to_postgres(node.data)
        _run(
            [
                node.tool("initdb"),
                "-D",
                str(node.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ]
        )
        conf = [
            "# written by tools/pgstack.py",
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",
            "wal_level = replica",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "hot_standby = on",
            "hot_standby_feedback = on",
            "shared_preload_libraries = 'pg_stat_statements'",
            "pg_stat_statements.track = all",
            "track_io_timing = on",
            "max_connections = 200",
            "shared_buffers = 128MB",
            "log_min_duration_statement = 1000",
            "timezone = 'UTC'",
        ]
        if self.fast:
            conf += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with open(node.data / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
            fh.write("\n".join(conf) + "\n")
        # Loopback only, so trust is the local developer's own machine; the app user has a
        # password anyway, the same one the app's settings use.
        hba = (
            "host all all 127.0.0.1/32 trust\n"
            "host all all ::1/128 trust\n"
            "host replication all 127.0.0.1/32 trust\n"
        )
        (node.data / "pg_hba.conf").write_text(hba, encoding="utf-8")
        node.start()
        node.psql(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}' CREATEDB")
        node.psql(f"CREATE DATABASE {APP_DB} OWNER {APP_USER}")
        for db in (APP_DB, "postgres"):
            node.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", db=db)
        # The app reads replay state and replication statistics for /readyz and routing.
        node.psql(f"GRANT pg_monitor TO {APP_USER}")

    def _ensure_audit_role(self) -> None:
        """The audit's monitoring role and HypoPG, also on a stack created before they existed.

        template1 gets the extensions and the grant too, so a database created later (a test's,
        a second tenant's) can be audited the same way.
        """
        node = self.primary
        exists = node.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{AUDIT_USER}'")  # noqa: S608
        if not exists:
            node.psql(
                f"CREATE ROLE {AUDIT_USER} LOGIN PASSWORD '{AUDIT_PASSWORD}' "
                f"IN ROLE pg_monitor, {APP_USER}"
            )
        hypopg = bool(node.psql("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'"))
        for db in (APP_DB, "postgres", "template1"):
            node.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", db=db)
            if hypopg:
                node.psql("CREATE EXTENSION IF NOT EXISTS hypopg", db=db)
            node.psql(
                "GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) "
                f"TO {AUDIT_USER}",
                db=db,
            )

    def _init_replica(self) -> None:
        node = self.replica
        if node.data.exists():
            shutil.rmtree(node.data)
        drop_slot = (
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "  # noqa: S608
            f"WHERE slot_name = '{SLOT}'"
        )
        self.primary.psql(drop_slot)
        _run(
            [
                node.tool("pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.primary_port),
                "-U",
                SUPERUSER,
                "-D",
                str(node.data),
                "-R",
                "-C",
                "-S",
                SLOT,
                "-X",
                "stream",
                "--checkpoint=fast",
            ]
        )
        with open(node.data / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
            fh.write(f"port = {self.replica_port}\n")

    def _wait_streaming(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.primary.psql(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
            )
            if state and int(state) > 0:
                return
            time.sleep(0.1)
        raise StackError(
            f"the replica did not start streaming within {timeout:.0f}s; see {self.replica.log}"
        )


def temporary_stack() -> Stack:
    """A throwaway primary + replica in a fresh temporary folder on free ports (tests)."""
    base = Path(tempfile.mkdtemp(prefix="pgstack-"))
    primary_port = free_port()
    replica_port = free_port()
    while replica_port == primary_port:
        replica_port = free_port()
    return Stack(base, primary_port, replica_port, fast=True)


def local_stack(args: argparse.Namespace | None = None) -> Stack:
    root = Path(getattr(args, "dir", None) or os.environ.get("PGSTACK_DIR") or DEFAULT_DIR)
    primary = int(
        getattr(args, "primary_port", None)
        or os.environ.get("PGSTACK_PRIMARY_PORT")
        or DEFAULT_PRIMARY_PORT
    )
    replica = int(
        getattr(args, "replica_port", None)
        or os.environ.get("PGSTACK_REPLICA_PORT")
        or DEFAULT_REPLICA_PORT
    )
    return Stack(root, primary, replica)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.pgstack", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=["start", "stop", "status", "clean", "env"])
    parser.add_argument("--dir", help=f"data folder (default {DEFAULT_DIR}, or PGSTACK_DIR)")
    parser.add_argument("--primary-port", type=int, help=f"default {DEFAULT_PRIMARY_PORT}")
    parser.add_argument("--replica-port", type=int, help=f"default {DEFAULT_REPLICA_PORT}")
    args = parser.parse_args(argv)
    try:
        stack = local_stack(args)
        if args.command == "start":
            stack.start()
            print(f"primary  {stack.primary_url}  (running, data {stack.primary.data})")
            print(f"replica  {stack.replica_url}  (streaming, data {stack.replica.data})")
        elif args.command == "stop":
            stack.stop()
            print("stopped primary and replica")
        elif args.command == "clean":
            stack.clean()
            print(f"removed {stack.root}")
        elif args.command == "status":
            for name, up in stack.status().items():
                print(f"{name}: {'running' if up else 'stopped'}")
        elif args.command == "env":
            print(f"APP_DATABASE_URL={stack.primary_url}")
            print(f"APP_REPLICA_DATABASE_URL={stack.replica_url}")
            print(f"APP_AUDIT_DATABASE_URL={stack.audit_url}")
    except StackError as exc:
        print(f"pgstack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
