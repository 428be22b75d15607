"""The local database stack: streaming, data kept across restarts, missing binaries named."""

from __future__ import annotations

import glob
import time

import pytest

from tools import pgstack
from tools.pgstack import Stack, StackError


def test_each_replica_streams_from_primary(pg_stack: Stack) -> None:
    assert len(pg_stack.replicas) == 2, "the test session runs with two replicas"
    pg_stack.primary.psql("CREATE TABLE IF NOT EXISTS stack_probe (v int)", db="app")
    pg_stack.primary.psql("INSERT INTO stack_probe VALUES (42)", db="app")
    lsn = pg_stack.primary.psql("SELECT pg_current_wal_insert_lsn()")
    replayed = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
    deadline = time.monotonic() + 60
    for node in pg_stack.replicas:
        while node.psql(replayed) != "t":
            if time.monotonic() > deadline:
                pytest.fail(f"{node.name} never replayed the insert")
            time.sleep(0.05)
        assert node.psql("SELECT max(v) FROM stack_probe", db="app") == "42"
        assert node.psql("SELECT pg_is_in_recovery()") == "t"
        assert node.psql("SHOW hot_standby") == "on"
        assert node.psql("SHOW port") == str(node.port)
    assert "pg_stat_statements" in pg_stack.primary.psql("SHOW shared_preload_libraries")
    assert pg_stack.primary.psql("SHOW wal_level") == "replica"
    # One slot each, both in use: neither replica can fall behind what the primary keeps.
    slots = pg_stack.primary.psql(
        "SELECT string_agg(slot_name || ':' || active, ',' ORDER BY slot_name) "
        "FROM pg_replication_slots"
    )
    assert slots == "replica1:true,replica2:true"
    pg_stack.primary.psql("DROP TABLE stack_probe", db="app")


def test_replica_count_and_ports_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSTACK_REPLICAS", "2")
    monkeypatch.setenv("PGSTACK_REPLICA_PORT", "57633")
    stack = pgstack.local_stack()
    assert [(n.name, n.port) for n in stack.replicas] == [("replica", 57633), ("replica2", 57634)]
    assert [n.data.name for n in stack.replicas] == ["replica", "replica2"]
    assert stack.replica_urls == [stack.url(57633), stack.url(57634)]
    monkeypatch.delenv("PGSTACK_REPLICAS")
    assert [n.port for n in pgstack.local_stack().replicas] == [57633]


def test_start_twice_reuses_the_data(pg_stack: Stack) -> None:
    pg_stack.primary.psql("CREATE TABLE IF NOT EXISTS stack_keep (v int)", db="app")
    pg_stack.primary.psql("INSERT INTO stack_keep VALUES (7)", db="app")
    pg_stack.start()  # already running: a no-op
    pg_stack.stop()
    assert pg_stack.status() == {"primary": False, "replica": False, "replica2": False}
    pg_stack.start()
    assert pg_stack.status() == {"primary": True, "replica": True, "replica2": True}
    assert pg_stack.primary.psql("SELECT v FROM stack_keep", db="app") == "7"
    pg_stack.primary.psql("DROP TABLE stack_keep", db="app")


def test_missing_binaries_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_BIN", "/nonexistent/bin")
    with pytest.raises(StackError, match="apt-get install -y postgresql"):
        pgstack.find_bin_dir()
    monkeypatch.delenv("PG_BIN")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(glob, "glob", lambda _: [])
    with pytest.raises(StackError, match="PostgreSQL server binaries"):
        pgstack.find_bin_dir()


def test_cli_status_and_env(pg_stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--dir",
        str(pg_stack.root),
        "--primary-port",
        str(pg_stack.primary_port),
        "--replica-port",
        str(pg_stack.replica_port),
    ]
    assert pgstack.main(["status", *args]) == 0
    # A stack started with more replicas than asked for now still shows (and stops) them all.
    assert capsys.readouterr().out.split() == [
        "primary:", "running", "replica:", "running", "replica2:", "running"
    ]  # fmt: skip
    assert pgstack.main(["env", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"APP_DATABASE_URL={pg_stack.primary_url}" in out
    assert f"APP_REPLICA_DATABASE_URLS={pg_stack.replica_url}" in out
    assert pgstack.main(["env", *args, "--replicas", "2"]) == 0
    first, second = pg_stack.replica_port, pg_stack.replica_port + 1
    urls = f"{pg_stack.url(first)},{pg_stack.url(second)}"
    assert f"APP_REPLICA_DATABASE_URLS={urls}" in capsys.readouterr().out.splitlines()
