"""tools/pooler.py's PgBouncer configuration, for any number of replicas (no server needed)."""

from __future__ import annotations

import configparser
from pathlib import Path
from urllib.parse import urlsplit

from tools.pooler import Pooler


def _parsed(pooler: Pooler) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(comment_prefixes=(";",), interpolation=None)
    parser.read_string(pooler.config_text())
    return parser


def test_each_server_gets_a_pool_and_the_app_a_url_per_server() -> None:
    pooler = Pooler(Path("/nonexistent"), 6432, primary_port=5432, replica_ports=[5433, 5434])
    config = _parsed(pooler)
    pools = {
        name: dict(p.split("=") for p in spec.split()) for name, spec in config["databases"].items()
    }
    assert {name: spec["port"] for name, spec in pools.items()} == {
        "app": "5432", "app_replica": "5433", "app_replica_2": "5434",
    }  # fmt: skip
    assert {spec["dbname"] for spec in pools.values()} == {"app"}
    assert config["pgbouncer"]["pool_mode"] == "transaction"
    # statement_timeout stays refused: the app must send it per transaction, never lose it.
    assert "statement_timeout" not in config["pgbouncer"]["ignore_startup_parameters"]
    assert [urlsplit(u).path for u in pooler.replica_urls] == ["/app_replica", "/app_replica_2"]
    env = pooler.app_env()
    assert urlsplit(env["APP_DATABASE_URL"]).port == 6432
    assert urlsplit(env["APP_DATABASE_DIRECT_URL"]).port == 5432
    assert env["APP_DB_TRANSACTION_POOLER"] == "true"
