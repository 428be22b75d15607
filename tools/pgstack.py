"""A local PostgreSQL primary and streaming replicas, without Docker.

The same code serves the developer's stack (``make run``: data under ``var/pg`` of the repo,
ports 55432 / 55433 (and 55434, ... for more replicas), reused between runs) and the test
session (a temporary folder, free ports, thrown away at the end). One replica by default;
``PGSTACK_REPLICAS=2`` (or ``--replicas 2``) starts two. Standard library only: it runs before
any virtualenv exists.

    python -m tools.pgstack start|stop|status|clean|env [--dir DIR]
                            [--primary-port N] [--replica-port N] [--replicas N]
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


def slot_name(index: int) -> str:
    """Replica N streams from slot "replicaN" (compose names its slots the same way)."""
    return f"replica{index + 1}"


def replica_name(index: int) -> str:
    """The first replica keeps the name (and the data folder) it had when it was the only one."""
    return "replica" if index == 0 else f"replica{index + 1}"


@dataclass
class Stack:
    """A primary and its streaming replicas under one folder.

    ``replica_port`` is the first replica's port; ``replica_ports`` all of them (default: the
    ports after ``replica_port``, one per replica).
    """

    root: Path
    primary_port: int
    replica_port: int
    fast: bool = False  # fsync off: for throwaway test clusters only
    bin_dir: Path = field(default_factory=find_bin_dir)
    replica_count: int = 1
    replica_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.replica_count < 1:
            raise StackError(f"at least one replica, not {self.replica_count}")
        if not self.replica_ports:
            self.replica_ports = tuple(self.replica_port + i for i in range(self.replica_count))
        if len(self.replica_ports) != self.replica_count:
            raise StackError(f"{self.replica_count} replicas need as many ports")
        self.replica_port = self.replica_ports[0]
        self.primary = Node("primary", self.root / "primary", self.primary_port, self.bin_dir)
        self.replicas = [
            Node(replica_name(i), self.root / replica_name(i), port, self.bin_dir)
            for i, port in enumerate(self.replica_ports)
        ]
        self.replica = self.replicas[0]

    def _every_replica(self) -> list[Node]:
        """The replicas asked for, and any more a run with more replicas left (to stop them)."""
        nodes = list(self.replicas)
        index = len(nodes)
        while (self.root / replica_name(index) / "PG_VERSION").exists():
            nodes.append(
                Node(replica_name(index), self.root / replica_name(index), 0, self.bin_dir)
            )
            index += 1
        return nodes

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
    def replica_urls(self) -> list[str]:
        return [self.url(port) for port in self.replica_ports]

    @property
    def audit_url(self) -> str:
        return f"postgresql://{AUDIT_USER}:{AUDIT_PASSWORD}@127.0.0.1:{self.primary_port}/{APP_DB}"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create what is missing, then start every node. Existing data is reused."""
        self.root.mkdir(parents=True, exist_ok=True)
        if _as_root():
            os.chmod(self.root, 0o755)  # noqa: S103 - the postgres user must traverse it
        _give_to_postgres(self.root)
        if not self.primary.exists():
            self._init_primary()
        self.primary.start()
        self._ensure_audit_role()
        for index, node in enumerate(self.replicas):
            if not node.exists():
                self._init_replica(node, slot=slot_name(index))
            node.start()
        self._wait_streaming()

    def stop(self) -> None:
        # Replicas first: stopping the primary first makes the replicas log reconnect errors.
        for node in self._every_replica():
            node.stop()
        self.primary.stop()

    def clean(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def status(self) -> dict[str, bool]:
        return {"primary": self.primary.running()} | {
            node.name: node.running() for node in self._every_replica()
        }

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

    def _init_replica(self, node: Node, slot: str) -> None:
        if node.data.exists():
            shutil.rmtree(node.data)
        drop_slot = (
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "  # noqa: S608
            f"WHERE slot_name = '{slot}'"
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
                slot,
                "-X",
                "stream",
                "--checkpoint=fast",
            ]
        )
        with open(node.data / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
            fh.write(f"port = {node.port}\n")

    def _wait_streaming(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.primary.psql(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
            )
            if state and int(state) >= len(self.replicas):
                return
            time.sleep(0.1)
        logs = ", ".join(str(node.log) for node in self.replicas)
        raise StackError(
            f"the replicas did not all start streaming within {timeout:.0f}s; see {logs}"
        )


def temporary_stack(replicas: int = 1) -> Stack:
    """A throwaway primary + ``replicas`` replicas in a fresh temporary folder on free ports."""
    base = Path(tempfile.mkdtemp(prefix="pgstack-"))
    ports: list[int] = []
    while len(ports) < replicas + 1:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return Stack(
        base, ports[0], ports[1], fast=True, replica_count=replicas, replica_ports=tuple(ports[1:])
    )


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
    count = int(getattr(args, "replicas", None) or os.environ.get("PGSTACK_REPLICAS") or 1)
    return Stack(root, primary, replica, replica_count=count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.pgstack", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=["start", "stop", "status", "clean", "env"])
    parser.add_argument("--dir", help=f"data folder (default {DEFAULT_DIR}, or PGSTACK_DIR)")
    parser.add_argument("--primary-port", type=int, help=f"default {DEFAULT_PRIMARY_PORT}")
    parser.add_argument(
        "--replica-port",
        type=int,
        help=f"the first replica's; the others take the next ones (default {DEFAULT_REPLICA_PORT})",
    )
    parser.add_argument(
        "--replicas", type=int, help="how many replicas (default 1, or PGSTACK_REPLICAS)"
    )
    args = parser.parse_args(argv)
    try:
        stack = local_stack(args)
        if args.command == "start":
            stack.start()
            print(f"primary  {stack.primary_url}  (running, data {stack.primary.data})")
            for node in stack.replicas:
                print(f"{node.name:<8} {stack.url(node.port)}  (streaming, data {node.data})")
        elif args.command == "stop":
            stack.stop()
            print("stopped the primary and the replicas")
        elif args.command == "clean":
            stack.clean()
            print(f"removed {stack.root}")
        elif args.command == "status":
            for name, up in stack.status().items():
                print(f"{name}: {'running' if up else 'stopped'}")
        elif args.command == "env":
            print(f"APP_DATABASE_URL={stack.primary_url}")
            print(f"APP_REPLICA_DATABASE_URL={stack.replica_url}")
            print(f"APP_REPLICA_DATABASE_URLS={','.join(stack.replica_urls)}")
            print(f"APP_AUDIT_DATABASE_URL={stack.audit_url}")
    except StackError as exc:
        print(f"pgstack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
