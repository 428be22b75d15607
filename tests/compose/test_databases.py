"""The app, the replicas, the exporters and PgBouncer reach the primary the way it is set up."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.compose.compose_files import (
    PGBOUNCER_INI,
    REPLICAS,
    REPO,
    SERVICES,
    STANDBY_MINIMUMS,
    assert_none,
    check_endpoint,
    command_words,
    depends_on,
    environment,
    host_path,
    listening_ports,
    pgbouncer_config,
)


def test_the_app_reaches_the_databases_with_the_credentials_the_primary_creates() -> None:
    primary_env = environment(SERVICES["postgres-primary"])
    expected = (
        primary_env["APP_DB_USER"],
        primary_env["APP_DB_PASSWORD"],
        primary_env["APP_DB_NAME"],
    )
    problems = []
    for name, service in SERVICES.items():
        env = environment(service)
        for variable in ("APP_DATABASE_URL", "APP_REPLICA_DATABASE_URL", "APP_DATABASE_DIRECT_URL"):
            if variable not in env:
                continue
            url = urlsplit(env[variable])
            where = f"{name} {variable}"
            if url.scheme != "postgresql+asyncpg":
                problems.append(f"{where}: driver {url.scheme}, the app needs postgresql+asyncpg")
            problems += check_endpoint(where, url.hostname, url.port)
            database = url.path.lstrip("/")
            if url.hostname == "pgbouncer":  # a pool's name, standing for a server's database
                database = _pool_options(database).get("dbname", f"no pool {database}")
            if (url.username, url.password, database) != expected:
                problems.append(f"{where}: user/password/database differ from {expected}")
        if dsn := env.get("DATA_SOURCE_NAME"):
            url = urlsplit(dsn)
            problems += check_endpoint(f"{name} DATA_SOURCE_NAME", url.hostname, url.port)
            if (url.username, url.password) != (
                primary_env["EXPORTER_USER"],
                primary_env["EXPORTER_PASSWORD"],
            ):
                problems.append(
                    f"{name}: DATA_SOURCE_NAME is not the exporter role the primary creates"
                )
    assert "APP_REPLICA_DATABASE_URL" in environment(SERVICES["app"])
    assert_none(problems, "database connections")


def _server_settings(service: dict[str, Any]) -> dict[str, str]:
    words = command_words(service.get("command"))
    pairs = (words[i + 1] for i, word in enumerate(words[:-1]) if word == "-c")
    return dict(pair.partition("=")[::2] for pair in pairs)


def test_each_replica_can_stand_by_for_the_primary_from_a_slot_of_its_own() -> None:
    primary = SERVICES["postgres-primary"]
    assert _server_settings(primary).get("wal_level") in ("replica", "logical")
    primary_env = environment(primary)
    slots = primary_env["REPLICATION_SLOTS"].split()
    assert len(slots) == len(set(slots)), f"the primary creates a slot twice: {slots}"
    used = []
    for name in REPLICAS:
        replica = SERVICES[name]
        for setting, default in STANDBY_MINIMUMS.items():
            ours = _server_settings(replica).get(setting, default)
            theirs = _server_settings(primary).get(setting, default)
            assert int(ours) >= int(theirs), f"{name} {setting}={ours} is below the primary's"
        env = environment(replica)
        for key in ("REPLICATION_USER", "REPLICATION_PASSWORD"):
            assert env.get(key) == primary_env.get(key), f"{name} clones with another {key}"
        assert env["REPLICATION_SLOT"] in slots, f"{name}: the primary creates no slot for it"
        used.append(env["REPLICATION_SLOT"])
        assert_none(
            check_endpoint(f"{name} PRIMARY_HOST", env["PRIMARY_HOST"], int(env["PRIMARY_PORT"])),
            "replication source",
        )
        assert env["PRIMARY_HOST"] == "postgres-primary", f"{name} clones from elsewhere"
    assert len(used) == len(set(used)), f"two replicas share a slot: {used}"
    unused = set(slots) - set(used)
    assert not unused, f"slots no replica consumes would keep WAL forever: {unused}"
    for script in sorted((REPO / "deploy" / "compose").glob("*.sh")):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name} does not parse: {result.stderr}"


def test_every_database_server_has_an_exporter() -> None:
    watched = {
        urlsplit(environment(service)["DATA_SOURCE_NAME"]).hostname
        for service in SERVICES.values()
        if "DATA_SOURCE_NAME" in environment(service)
    }
    servers = {"postgres-primary", *REPLICAS}
    assert servers <= watched, f"no postgres-exporter for {sorted(servers - watched)}"


def test_pgbouncer_pools_each_server_for_the_apps_role_in_transaction_mode() -> None:
    service = SERVICES["pgbouncer"]
    config = pgbouncer_config()
    settings = config["pgbouncer"]
    assert settings["pool_mode"] == "transaction"
    assert int(settings["listen_port"]) in listening_ports(service)
    primary_env = environment(SERVICES["postgres-primary"])
    targets = {}
    for database, spec in config["databases"].items():
        options = dict(part.split("=", 1) for part in spec.split())
        where = f"pgbouncer database {database}"
        assert_none(check_endpoint(where, options["host"], int(options["port"])), "pgbouncer")
        assert options["dbname"] == primary_env["APP_DB_NAME"], f"{where}: another database"
        targets[options["host"]] = database
    assert set(targets) == {"postgres-primary", *REPLICAS}, f"pgbouncer pools {sorted(targets)}"
    assert targets["postgres-primary"] == primary_env["APP_DB_NAME"], "the primary's pool name"
    # The auth file lends the app's role, with the password the primary creates it with.
    auth = host_path(service, settings["auth_file"])
    assert auth is not None, f"{settings['auth_file']} is not mounted"
    assert auth.is_file(), f"{auth} is missing"
    users = dict(re.findall(r'^"([^"]+)"\s+"([^"]*)"', auth.read_text(), flags=re.MULTILINE))
    assert users == {primary_env["APP_DB_USER"]: primary_env["APP_DB_PASSWORD"]}
    mounted = host_path(service, "/etc/pgbouncer/pgbouncer.ini")
    assert mounted == PGBOUNCER_INI, "compose mounts another pgbouncer.ini than the tested one"
    check = " ".join(command_words(service["healthcheck"]["test"][1:]))
    assert f"-p {settings['listen_port']}" in check, "the health check bypasses PgBouncer"


def _pool_options(database: str) -> dict[str, str]:
    spec = pgbouncer_config()["databases"].get(database, "")
    return dict(part.split("=", 1) for part in spec.split())


def test_the_app_and_the_worker_pool_through_pgbouncer_and_listen_on_the_primary() -> None:
    for name in ("app", "worker"):
        service = SERVICES[name]
        env = environment(service)
        assert env["APP_DB_TRANSACTION_POOLER"] == "true", f"{name} is not told it is pooled"
        targets = {}
        for variable in ("APP_DATABASE_URL", "APP_REPLICA_DATABASE_URL"):
            url = urlsplit(env[variable])
            assert url.hostname == "pgbouncer", f"{name} {variable} bypasses PgBouncer"
            targets[variable] = _pool_options(url.path.lstrip("/")).get("host")
        assert targets["APP_DATABASE_URL"] == "postgres-primary", f"{name} writes via {targets}"
        assert targets["APP_REPLICA_DATABASE_URL"] in REPLICAS, f"{name} reads via {targets}"
        # LISTEN needs a session of its own: through transaction pooling it would hear nothing.
        assert urlsplit(env["APP_DATABASE_DIRECT_URL"]).hostname == "postgres-primary", name
        assert depends_on(service)["pgbouncer"]["condition"] == "service_healthy", name
    # Migrations run on the direct URL (app/__main__.py), so they wait for the primary only.
    migrate = environment(SERVICES["migrate"])
    assert urlsplit(migrate["APP_DATABASE_DIRECT_URL"]).hostname == "postgres-primary"


def test_the_app_accepts_the_compose_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.platform.config import Settings

    for name, service in SERVICES.items():
        env = environment(service)
        if "APP_ENV" not in env:
            continue
        for variable in [v for v in os.environ if v.startswith("APP_")]:
            monkeypatch.delenv(variable)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        settings = Settings(_env_file=None)
        assert settings.env == env["APP_ENV"], name


def test_the_app_reads_from_every_replica_each_through_its_own_pool() -> None:
    primary_env = environment(SERVICES["postgres-primary"])
    expected = (primary_env["APP_DB_USER"], primary_env["APP_DB_PASSWORD"])
    for name in ("app", "worker", "migrate"):
        env = environment(SERVICES[name])
        urls = [u.strip() for u in env["APP_REPLICA_DATABASE_URLS"].split(",") if u.strip()]
        assert urls[0] == env["APP_REPLICA_DATABASE_URL"], f"{name}: the two settings disagree"
        problems = []
        servers = []
        for url in map(urlsplit, urls):
            where = f"{name} APP_REPLICA_DATABASE_URLS {url.hostname}{url.path}"
            problems += check_endpoint(where, url.hostname, url.port)
            if url.hostname != "pgbouncer":
                problems.append(f"{where}: bypasses PgBouncer")
            if (url.username, url.password) != expected:
                problems.append(f"{where}: user/password differ from {expected}")
            # Each replica a pool of its own, so the app checks and routes to each on its own.
            servers.append(_pool_options(url.path.lstrip("/")).get("host"))
        assert servers == list(REPLICAS), f"{name} reads from {servers}, not from each replica"
        assert_none(problems, "replica connections")
