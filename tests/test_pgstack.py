"""The local database stack: streaming, data kept across restarts, missing binaries named."""

from __future__ import annotations

import glob
import time

import pytest

from tools import pgstack
from tools.pgstack import Stack, StackError


def test_replica_streams_from_primary(pg_stack: Stack) -> None:
    pg_stack.primary.psql("CREATE TABLE IF NOT EXISTS stack_probe (v int)", db="app")
    pg_stack.primary.psql("INSERT INTO stack_probe VALUES (42)", db="app")
    lsn = pg_stack.primary.psql("SELECT pg_current_wal_insert_lsn()")
    replayed = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
    deadline = time.monotonic() + 60
    while pg_stack.replica.psql(replayed) != "t":
        if time.monotonic() > deadline:
            pytest.fail("the replica never replayed the insert")
        time.sleep(0.05)
    assert pg_stack.replica.psql("SELECT max(v) FROM stack_probe", db="app") == "42"
    assert pg_stack.replica.psql("SELECT pg_is_in_recovery()") == "t"
    assert "pg_stat_statements" in pg_stack.primary.psql("SHOW shared_preload_libraries")
    assert pg_stack.primary.psql("SHOW wal_level") == "replica"
    assert pg_stack.replica.psql("SHOW hot_standby") == "on"
    pg_stack.primary.psql("DROP TABLE stack_probe", db="app")


def test_start_twice_reuses_the_data(pg_stack: Stack) -> None:
    pg_stack.primary.psql("CREATE TABLE IF NOT EXISTS stack_keep (v int)", db="app")
    pg_stack.primary.psql("INSERT INTO stack_keep VALUES (7)", db="app")
    pg_stack.start()  # already running: a no-op
    pg_stack.stop()
    assert pg_stack.status() == {"primary": False, "replica": False}
    pg_stack.start()
    assert pg_stack.status() == {"primary": True, "replica": True}
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
    assert capsys.readouterr().out.split() == ["primary:", "running", "replica:", "running"]
    assert pgstack.main(["env", *args]) == 0
    assert f"APP_DATABASE_URL={pg_stack.primary_url}" in capsys.readouterr().out
