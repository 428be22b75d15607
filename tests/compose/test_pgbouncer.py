"""Debian's PgBouncer runs compose's pgbouncer.ini as written: it authenticates the app's role,
sends each database name to its server, and pools in transaction mode.

Only [databases] and the listening address change, to reach the test session's primary and
replica on loopback; every pooling setting is the file's own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.compose.compose_files import PGBOUNCER_INI, pgbouncer_config
from tests.helpers import require_tool
from tools.pgstack import APP_PASSWORD, APP_USER, Stack, free_port

CLIENTS = 30  # more than default_pool_size + reserve_pool_size: session pooling would block


def _ini_for(stack: Stack, folder: Path, port: int) -> str:
    config = pgbouncer_config()
    targets = {"app": stack.primary_port, "app_replica": stack.replica_port}
    lines = ["[databases]"]
    for database, spec in config["databases"].items():
        options = dict(part.split("=", 1) for part in spec.split())
        # The test stack has one replica: the second replica's pool points at it too.
        options.update(host="127.0.0.1", port=str(targets.get(database, stack.replica_port)))
        lines.append(f"{database} = " + " ".join(f"{k}={v}" for k, v in options.items()))
    settings = {
        **config["pgbouncer"],
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "auth_file": str(folder / "userlist.txt"),
    }
    lines += ["", "[pgbouncer]", *(f"{key} = {value}" for key, value in settings.items())]
    return "\n".join(lines) + "\n"


@pytest.fixture
def bouncer(pg_stack: Stack) -> Iterator[int]:
    binary = require_tool("pgbouncer", "Debian/Ubuntu: apt-get install pgbouncer")
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-test-"))
    folder.chmod(0o755)  # PgBouncer runs as postgres when the tests run as root
    shutil.copy(PGBOUNCER_INI.with_name("userlist.txt"), folder / "userlist.txt")
    port = free_port()
    (folder / "pgbouncer.ini").write_text(_ini_for(pg_stack, folder, port), encoding="utf-8")
    for path in folder.iterdir():
        path.chmod(0o644)
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    log = (folder / "pgbouncer.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, folder / "pgbouncer.log")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):  # a minute at most, polled every 0.1 s
        assert process.poll() is None, f"pgbouncer exited:\n{log.read_text()}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"pgbouncer did not listen on {port}:\n{log.read_text()}")


async def _connect(port: int, database: str, name: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        host="127.0.0.1", port=port, user=APP_USER, password=APP_PASSWORD, database=database,
        server_settings={"application_name": name}, statement_cache_size=0, timeout=30,
    )  # fmt: skip


async def test_each_database_name_reaches_its_server(bouncer: int) -> None:
    for database, in_recovery in [("app", False), ("app_replica", True), ("app_replica_2", True)]:
        conn = await _connect(bouncer, database, "pgbouncer-routing")
        try:
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is in_recovery, database
        finally:
            await conn.close()


async def test_many_clients_share_a_few_server_connections(bouncer: int, pg_stack: Stack) -> None:
    marker = f"pgbouncer-{uuid.uuid4().hex[:12]}"
    clients = []
    try:
        async with asyncio.timeout(120):
            for _ in range(CLIENTS):
                conn = await _connect(bouncer, "app", marker)
                clients.append(conn)
                assert await conn.fetchval("SELECT 1") == 1
        direct = await asyncpg.connect(pg_stack.url(pg_stack.primary_port, driver="postgresql"))
        try:
            servers = await direct.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", marker
            )
        finally:
            await direct.close()
        # Every client is still connected; in transaction mode each returned its server
        # connection when its statement ended, so a handful served all of them.
        assert 1 <= servers <= 3, f"{servers} server connections for {CLIENTS} clients"
    finally:
        await asyncio.gather(*(conn.close() for conn in clients), return_exceptions=True)
