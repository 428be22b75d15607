"""The compose stack's files agree with each other, checked without a Docker engine.

Every service name, port, path and secret that one file expects of another resolves, so
`docker compose up` does not fail on a typo halfway through starting.

Values are read the way a fresh clone without a `.env` sees them: `${VAR:-default}` is its
default, whatever the environment of the test run holds.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers import require_tool

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
GRAFANA = REPO / "grafana"

REQUIRED_SERVICES = {
    "app", "postgres-primary", "postgres-replica", "postgres-exporter-primary",
    "postgres-exporter-replica", "prometheus", "alertmanager", "grafana", "mailpit",
}  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# What each image listens on by itself; a published or `expose`d port adds to it.
IMAGE_PORTS = {
    "postgres": {5432},
    "prometheuscommunity/postgres-exporter": {9187},
    "prom/prometheus": {9090},
    "prom/alertmanager": {9093},
    "grafana/grafana": {3000},
    "axllent/mailpit": {1025, 8025},
}
# A hot standby refuses to start when one of these is lower than on its primary.
STANDBY_MINIMUMS = {
    "max_connections": 100, "max_wal_senders": 10, "max_worker_processes": 8,
    "max_prepared_transactions": 0, "max_locks_per_transaction": 64,
}  # fmt: skip

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<braced>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)
_unset_without_default: list[str] = []


def _interpolate(value: Any) -> Any:
    """Compose's variable substitution, with every variable unset."""
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op") or ""
        if op.endswith("-"):
            return match.group("arg")
        if op.endswith("+"):
            return ""
        _unset_without_default.append(match.group(0))
        return ""

    return _VARIABLE.sub(substitute, value)


def _load_yaml(path: Path) -> Any:
    assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


COMPOSE: dict[str, Any] = _interpolate(_load_yaml(COMPOSE_FILE))
SERVICES: dict[str, dict[str, Any]] = COMPOSE.get("services") or {}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _words(command: str | list[Any] | None) -> list[str]:
    if isinstance(command, str):
        return shlex.split(command)
    return [str(word) for word in command or []]


def _image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name.removeprefix("docker.io/").removeprefix("library/")


def _mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(kind, source, target) of each volume entry: kind "bind", "volume", "anonymous", ..."""
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            source, target = str(entry.get("source", "")), str(entry["target"])
            kind = entry.get("type", "volume")
        else:
            source, _, rest = str(entry).partition(":")
            target = rest.split(":", 1)[0] if rest else source
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            if not rest:
                kind, source = "anonymous", ""
        yield kind, source, target


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """Where a path inside the container lives in the repository, if a bind mount puts it there."""
    wanted = PurePosixPath(container_path)
    binds = [
        (PurePosixPath(target), source)
        for kind, source, target in _mounts(service)
        if kind == "bind" and source.startswith(".") and wanted.is_relative_to(target)
    ]
    if not binds:
        return None
    target, source = max(binds, key=lambda bind: len(bind[0].parts))  # the innermost mount wins
    return REPO / source / wanted.relative_to(target)


def _dockerfile_of(service: dict[str, Any]) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    build = {"context": build} if isinstance(build, str) else build
    return REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line, continuations joined, comments dropped."""
    result, pending = [], ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, arguments = (pending + line).partition(" ")
        result.append((instruction.upper(), arguments.strip()))
        pending = ""
    return result


def _ports(service: dict[str, Any]) -> Iterator[tuple[str | None, str, str]]:
    """(host port or None, container port, protocol) of each `ports` entry, ranges expanded."""

    def expand(spec: str) -> list[str]:
        first, _, last = spec.partition("-")
        return [str(p) for p in range(int(first), int(last or first) + 1)]

    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            host, container = entry.get("published"), str(entry["target"])
            protocol = entry.get("protocol", "tcp")
        else:
            spec, _, protocol = str(entry).partition("/")
            parts = spec.rsplit(":", 2)
            host, container = (parts[-2] or None) if len(parts) > 1 else None, parts[-1]
        hosts = expand(str(host)) if host else [None] * len(expand(container))
        yield from zip(hosts, expand(container), [protocol or "tcp"] * len(hosts), strict=True)


def _listening_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(container) for _, container, _ in _ports(service)}
    ports |= {int(str(p).split("/")[0]) for p in service.get("expose") or []}
    ports |= IMAGE_PORTS.get(_image_repository(service.get("image", "")), set())
    if dockerfile := _dockerfile_of(service):
        for instruction, arguments in _instructions(dockerfile):
            if instruction == "EXPOSE":
                ports |= {int(p.split("/")[0]) for p in arguments.split()}
    return ports


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable") and check.get("test") not in (None, ["NONE"], "NONE")
    dockerfile = _dockerfile_of(service)
    return dockerfile is not None and any(
        instruction == "HEALTHCHECK" and arguments.upper() != "NONE"
        for instruction, arguments in _instructions(dockerfile)
    )


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


ONE_SHOT = {
    name
    for service in SERVICES.values()
    for name, spec in _depends_on(service).items()
    if spec.get("condition") == "service_completed_successfully"
}


def _assert_none(problems: list[str], what: str) -> None:
    assert not problems, f"{what}:\n  " + "\n  ".join(problems)


def _check_endpoint(where: str, host: str | None, port: int | None) -> list[str]:
    if host not in SERVICES:
        return [f"{where}: host {host!r} is not a compose service"]
    if port not in _listening_ports(SERVICES[host]):
        listening = sorted(_listening_ports(SERVICES[host]))
        return [f"{where}: {host} does not listen on {port} (it does on {listening})"]
    return []


def test_the_stack_has_every_service_and_needs_no_env_file() -> None:
    assert SERVICES.keys() >= REQUIRED_SERVICES, f"missing: {REQUIRED_SERVICES - SERVICES.keys()}"
    assert not _unset_without_default, f"no default: {sorted(set(_unset_without_default))}"


def test_bind_mounts_and_the_paths_read_through_them_exist() -> None:
    problems = []
    for name, service in SERVICES.items():
        for kind, source, _ in _mounts(service):
            if kind == "bind" and source.startswith(".") and not (REPO / source).exists():
                problems.append(f"{name}: bind mount source {source} does not exist")
        words = [*_words(service.get("entrypoint")), *_words(service.get("command"))]
        words += _environment(service).values()
        for word in words:
            path = str(word).rpartition("=")[2]
            host = _host_path(service, path) if path.startswith("/") else None
            if host is not None and not host.exists():
                problems.append(f"{name}: reads {path}, but {host.relative_to(REPO)} is missing")
    _assert_none(problems, "paths the containers expect from the repository")


def test_dependencies_name_services_with_valid_conditions_and_no_cycle() -> None:
    problems = []
    for name, service in SERVICES.items():
        for dependency, spec in _depends_on(service).items():
            condition = spec.get("condition", "service_started")
            if dependency not in SERVICES:
                problems.append(f"{name} depends on undefined service {dependency!r}")
            elif condition not in CONDITIONS:
                problems.append(f"{name} -> {dependency}: unknown condition {condition!r}")
            elif condition == "service_healthy" and not _has_healthcheck(SERVICES[dependency]):
                problems.append(
                    f"{name} waits for {dependency} to be healthy; it has no healthcheck"
                )
            elif condition == "service_completed_successfully" and SERVICES[dependency].get(
                "restart", "no"
            ) not in ("no", "on-failure"):
                problems.append(f"{name} waits for {dependency} to finish, but it restarts")
    _assert_none(problems, "depends_on")

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        for dependency in _depends_on(SERVICES.get(name, {})):
            visit(dependency, (*path, name))

    for name in SERVICES:
        visit(name, ())


def test_every_long_running_service_has_a_healthcheck() -> None:
    missing = [name for name in SERVICES.keys() - ONE_SHOT if not _has_healthcheck(SERVICES[name])]
    assert not missing, f"no healthcheck (in compose or the image's Dockerfile): {sorted(missing)}"


def test_builds_point_at_dockerfiles_and_images_are_pinned() -> None:
    problems = []
    for name, service in SERVICES.items():
        if dockerfile := _dockerfile_of(service):
            if not dockerfile.is_file():
                problems.append(f"{name}: build uses {dockerfile}, which does not exist")
            continue
        image = service.get("image")
        if not image:
            problems.append(f"{name}: neither image nor build")
        elif "@sha256:" not in image and ":" not in image.rsplit("/", 1)[-1]:
            problems.append(f"{name}: image {image} has no tag")
        elif image.rsplit(":", 1)[-1] == "latest":
            problems.append(f"{name}: image {image} floats on :latest")
    _assert_none(problems, "images")


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = {s for svc in SERVICES.values() for kind, s, _ in _mounts(svc) if kind == "volume"}
    assert used <= declared, f"named volumes not declared at the top level: {used - declared}"
    assert declared <= used, f"declared volumes no service mounts: {declared - used}"


def test_no_two_services_publish_the_same_host_port() -> None:
    owners: dict[tuple[str, str], list[str]] = {}
    for name, service in SERVICES.items():
        for host, _, protocol in _ports(service):
            if host:
                owners.setdefault((host, protocol), []).append(name)
    clashes = {
        f"{port}/{proto}": names for (port, proto), names in owners.items() if len(names) > 1
    }
    assert not clashes, f"host ports published twice: {clashes}"


def test_the_app_reaches_the_databases_with_the_credentials_the_primary_creates() -> None:
    primary_env = _environment(SERVICES["postgres-primary"])
    expected = (
        primary_env["APP_DB_USER"],
        primary_env["APP_DB_PASSWORD"],
        primary_env["APP_DB_NAME"],
    )
    problems = []
    for name, service in SERVICES.items():
        env = _environment(service)
        for variable in ("APP_DATABASE_URL", "APP_REPLICA_DATABASE_URL"):
            if variable not in env:
                continue
            url = urlsplit(env[variable])
            where = f"{name} {variable}"
            if url.scheme != "postgresql+asyncpg":
                problems.append(f"{where}: driver {url.scheme}, the app needs postgresql+asyncpg")
            problems += _check_endpoint(where, url.hostname, url.port)
            if (url.username, url.password, url.path.lstrip("/")) != expected:
                problems.append(f"{where}: user/password/database differ from {expected}")
        if dsn := env.get("DATA_SOURCE_NAME"):
            url = urlsplit(dsn)
            problems += _check_endpoint(f"{name} DATA_SOURCE_NAME", url.hostname, url.port)
            if (url.username, url.password) != (
                primary_env["EXPORTER_USER"],
                primary_env["EXPORTER_PASSWORD"],
            ):
                problems.append(
                    f"{name}: DATA_SOURCE_NAME is not the exporter role the primary creates"
                )
    assert "APP_REPLICA_DATABASE_URL" in _environment(SERVICES["app"])
    _assert_none(problems, "database connections")


def test_the_replica_can_stand_by_for_the_primary() -> None:
    def settings(service: dict[str, Any]) -> dict[str, str]:
        words = _words(service.get("command"))
        pairs = (words[i + 1] for i, word in enumerate(words[:-1]) if word == "-c")
        return dict(pair.partition("=")[::2] for pair in pairs)

    primary, replica = SERVICES["postgres-primary"], SERVICES["postgres-replica"]
    for name, default in STANDBY_MINIMUMS.items():
        ours, theirs = settings(replica).get(name, default), settings(primary).get(name, default)
        assert int(ours) >= int(theirs), f"replica {name}={ours} is below the primary's {theirs}"
    assert settings(primary).get("wal_level") in ("replica", "logical")
    keys = ("REPLICATION_USER", "REPLICATION_PASSWORD", "REPLICATION_SLOT")
    primary_keys = {k: _environment(primary).get(k) for k in keys}
    replica_keys = {k: _environment(replica).get(k) for k in keys}
    assert primary_keys == replica_keys, "the replica clones with other credentials or slot"
    for script in sorted((REPO / "deploy" / "compose").glob("*.sh")):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name} does not parse: {result.stderr}"


def test_the_app_accepts_the_compose_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.platform.config import Settings

    for name, service in SERVICES.items():
        env = _environment(service)
        if "APP_ENV" not in env:
            continue
        for variable in [v for v in os.environ if v.startswith("APP_")]:
            monkeypatch.delenv(variable)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.env == env["APP_ENV"], name


def test_prometheus_scrapes_compose_services_with_the_app_metrics_token() -> None:
    config = _load_yaml(PROMETHEUS_CONFIG)
    assert {"global", "scrape_configs", "rule_files", "alerting"} <= config.keys()
    for pattern in config["rule_files"]:
        assert list(PROMETHEUS_CONFIG.parent.glob(pattern)), f"rule_files {pattern} matches nothing"
    problems, jobs = [], {}
    targets = [
        (f"alertmanagers[{i}]", target)
        for i, am in enumerate(config["alerting"]["alertmanagers"])
        for static in am["static_configs"]
        for target in static["targets"]
    ]
    for job in config["scrape_configs"]:
        jobs[job["job_name"]] = job
        for static in job.get("static_configs", []):
            targets += [(f"job {job['job_name']}", target) for target in static["targets"]]
    for where, target in targets:
        host, _, port = target.rpartition(":")
        problems += _check_endpoint(f"{where} target {target}", host, int(port))
    _assert_none(problems, "prometheus targets")

    app_jobs = [
        job
        for job in jobs.values()
        for static in job.get("static_configs", [])
        if any(target.rpartition(":")[0] == "app" for target in static["targets"])
    ]
    assert app_jobs, "no scrape job targets the app service"
    token = _environment(SERVICES["app"])["APP_METRICS_TOKEN"]
    for job in app_jobs:
        auth = job.get("authorization") or {}
        assert auth.get("type", "Bearer") == "Bearer", f"job {job['job_name']}: not a bearer token"
        assert auth.get("credentials") == token, (
            f"job {job['job_name']} sends a different token than the app's APP_METRICS_TOKEN"
        )


def test_alertmanager_routes_to_a_defined_receiver() -> None:
    config = _load_yaml(ALERTMANAGER_CONFIG)
    assert {"route", "receivers"} <= config.keys()
    receivers = {receiver["name"] for receiver in config["receivers"]}

    def routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield route
        for child in route.get("routes", []):
            yield from routes(child)

    for route in routes(config["route"]):
        if "receiver" in route:
            assert route["receiver"] in receivers, f"route to unknown receiver {route['receiver']}"
    assert {"alertname", "module"} <= set(config["route"]["group_by"])
    if smarthost := config.get("global", {}).get("smtp_smarthost"):
        host, _, port = smarthost.rpartition(":")
        _assert_none(_check_endpoint("smtp_smarthost", host, int(port)), "alertmanager")


def test_grafana_provisions_prometheus_and_the_dashboards_use_it() -> None:
    grafana = SERVICES["grafana"]
    provisioning = _host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning == GRAFANA / "provisioning", "grafana/provisioning is not mounted"

    datasources = _load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    (prometheus,) = [ds for ds in datasources if ds["type"] == "prometheus"]
    assert prometheus["uid"] == "prometheus"
    url = urlsplit(prometheus["url"])
    assert url.hostname == "prometheus", f"datasource url {prometheus['url']} is not the service"
    _assert_none(_check_endpoint("datasource url", url.hostname, url.port), "grafana")

    providers = _load_yaml(provisioning / "dashboards" / "dashboards.yml")["providers"]
    dashboards: list[Path] = []
    for provider in providers:
        folder = _host_path(grafana, provider["options"]["path"])
        assert folder is not None, f"provider path {provider['options']['path']} is not mounted"
        assert folder.is_dir(), f"{folder.relative_to(REPO)} is not a folder"
        dashboards += folder.rglob("*.json")
    assert dashboards, "no dashboard JSON under the provisioned folders"

    def datasource_uids(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict):
                yield node["datasource"].get("uid", "")
            for value in node.values():
                yield from datasource_uids(value)
        elif isinstance(node, list):
            for value in node:
                yield from datasource_uids(value)

    uids = {ds["uid"] for ds in datasources}
    for path in dashboards:
        board = json.loads(path.read_text(encoding="utf-8"))
        assert board.get("uid"), f"{path.name}: no uid, so links to it break on every reload"
        assert board.get("title"), f"{path.name}: no title"
        unknown = {uid for uid in datasource_uids(board) if not uid.startswith("$")} - uids
        assert not unknown, f"{path.name} uses datasources that are not provisioned: {unknown}"


def test_the_dockerfile_builds_from_the_lock_and_runs_unprivileged() -> None:
    dockerfile = _dockerfile_of(SERVICES["app"])
    assert dockerfile is not None
    steps = _instructions(dockerfile)
    args = dict(a.partition("=")[::2] for i, a in steps if i == "ARG" and "=" in a)
    stages = [a for i, a in steps if i == "FROM"]
    assert len(stages) >= 2, "the Dockerfile is not multi-stage (builder + runtime)"
    stage_names = {s.split()[-1].lower() for s in stages if " as " in s.lower()}
    for stage in stages:
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), stage.split()[0])
        if image.lower() not in stage_names:
            assert ":" in image, f"FROM {image} has no tag"
            assert not image.endswith(":latest"), f"FROM {image} floats on :latest"

    last_from = max(n for n, (i, _) in enumerate(steps) if i == "FROM")
    users = [a for i, a in steps[last_from:] if i == "USER"]
    assert users, "the runtime stage has no USER: it would run as root"
    assert users[-1].split(":")[0] not in ("root", "0"), f"USER {users[-1]} is root"

    copies = [a.split() for i, a in steps if i in ("COPY", "ADD") and "--from" not in a]
    sources = {s for words in copies for s in words[:-1] if not s.startswith("--")}
    syncs, lock_in_stage = 0, False
    for instruction, arguments in steps:
        lock_in_stage = instruction != "FROM" and (
            lock_in_stage or (instruction == "COPY" and "uv.lock" in arguments.split()[:-1])
        )
        if instruction == "RUN" and "uv sync" in arguments:
            syncs += 1
            assert lock_in_stage, "uv sync runs before uv.lock is copied into its stage"
            assert "--frozen" in arguments or "--locked" in arguments, "uv sync may re-resolve"
            assert "--no-dev" in arguments, "the image would carry the dev dependencies"
    assert syncs, "no `uv sync`: the dependencies are not installed from uv.lock"
    assert any(i == "HEALTHCHECK" for i, _ in steps), "no HEALTHCHECK"

    patterns = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for source in sources:
        excluded = False
        for pattern in (p.strip() for p in patterns if p.strip() and not p.startswith("#")):
            negated, glob = pattern.startswith("!"), pattern.lstrip("!").strip("/")
            if fnmatch.fnmatch(source.strip("/"), glob):
                excluded = not negated
        assert not excluded, f".dockerignore keeps {source} out of the context, but COPY needs it"


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = require_tool("promtool", "Debian/Ubuntu: apt-get install prometheus")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = require_tool("amtool", "Debian/Ubuntu: apt-get install prometheus-alertmanager")
    result = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER_CONFIG)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
