"""Reads docker-compose.yml and the files it points at, the way Compose would.

Values are read the way a fresh clone without a `.env` sees them: `${VAR:-default}` is its
default, whatever the environment of the test run holds.
"""

from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
GRAFANA = REPO / "grafana"
PGBOUNCER_INI = REPO / "deploy" / "compose" / "pgbouncer" / "pgbouncer.ini"

REQUIRED_SERVICES = {
    "app", "worker", "migrate", "postgres-primary", "postgres-replica", "postgres-replica-2",
    "postgres-exporter-primary", "postgres-exporter-replica", "postgres-exporter-replica-2",
    "pgbouncer", "prometheus", "alertmanager", "grafana", "mailpit",
}  # fmt: skip
# The streaming replicas, each cloned from the primary with its own slot.
REPLICAS = ("postgres-replica", "postgres-replica-2")
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
UNSET_WITHOUT_DEFAULT: list[str] = []


def interpolate(value: Any) -> Any:
    """Compose's variable substitution, with every variable unset."""
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
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
        UNSET_WITHOUT_DEFAULT.append(match.group(0))
        return ""

    return _VARIABLE.sub(substitute, value)


def load_yaml(path: Path) -> Any:
    assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


COMPOSE: dict[str, Any] = interpolate(load_yaml(COMPOSE_FILE))
SERVICES: dict[str, dict[str, Any]] = COMPOSE.get("services") or {}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_words(command: str | list[Any] | None) -> list[str]:
    if isinstance(command, str):
        return shlex.split(command)
    return [str(word) for word in command or []]


def image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name.removeprefix("docker.io/").removeprefix("library/")


def mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
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


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """Where a path inside the container lives in the repository, if a bind mount puts it there."""
    wanted = PurePosixPath(container_path)
    binds = [
        (PurePosixPath(target), source)
        for kind, source, target in mounts(service)
        if kind == "bind" and source.startswith(".") and wanted.is_relative_to(target)
    ]
    if not binds:
        return None
    target, source = max(binds, key=lambda bind: len(bind[0].parts))  # the innermost mount wins
    return REPO / source / wanted.relative_to(target)


def dockerfile_of(service: dict[str, Any]) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    build = {"context": build} if isinstance(build, str) else build
    return REPO / str(build.get("context", ".")) / str(build.get("dockerfile", "Dockerfile"))


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
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


def port_mappings(service: dict[str, Any]) -> Iterator[tuple[str | None, str, str]]:
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


def listening_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(container) for _, container, _ in port_mappings(service)}
    ports |= {int(str(p).split("/")[0]) for p in service.get("expose") or []}
    ports |= IMAGE_PORTS.get(image_repository(service.get("image", "")), set())
    if dockerfile := dockerfile_of(service):
        for instruction, arguments in instructions(dockerfile):
            if instruction == "EXPOSE":
                ports |= {int(p.split("/")[0]) for p in arguments.split()}
    return ports


def has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable") and check.get("test") not in (None, ["NONE"], "NONE")
    dockerfile = dockerfile_of(service)
    return dockerfile is not None and any(
        instruction == "HEALTHCHECK" and arguments.upper() != "NONE"
        for instruction, arguments in instructions(dockerfile)
    )


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


ONE_SHOT = {
    name
    for service in SERVICES.values()
    for name, spec in depends_on(service).items()
    if spec.get("condition") == "service_completed_successfully"
}


def assert_none(problems: list[str], what: str) -> None:
    assert not problems, f"{what}:\n  " + "\n  ".join(problems)


def check_endpoint(where: str, host: str | None, port: int | None) -> list[str]:
    if host not in SERVICES:
        return [f"{where}: host {host!r} is not a compose service"]
    if port not in listening_ports(SERVICES[host]):
        listening = sorted(listening_ports(SERVICES[host]))
        return [f"{where}: {host} does not listen on {port} (it does on {listening})"]
    return []


def pgbouncer_config(path: Path = PGBOUNCER_INI) -> dict[str, dict[str, str]]:
    """pgbouncer.ini's sections ([databases], [pgbouncer]) as PgBouncer reads them."""
    parser = configparser.ConfigParser(comment_prefixes=(";", "#"), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return {section: dict(parser[section]) for section in parser.sections()}
