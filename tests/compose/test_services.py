"""The compose services fit together: dependencies, health checks, images, volumes, ports.

Every service name, port and path one service expects of another resolves, so
`docker compose up` does not fail on a typo halfway through starting.
"""

from __future__ import annotations

from tests.compose.compose_files import (
    COMPOSE,
    CONDITIONS,
    ONE_SHOT,
    REPO,
    REQUIRED_SERVICES,
    SERVICES,
    UNSET_WITHOUT_DEFAULT,
    assert_none,
    command_words,
    depends_on,
    dockerfile_of,
    environment,
    has_healthcheck,
    host_path,
    mounts,
    port_mappings,
)


def test_the_stack_has_every_service_and_needs_no_env_file() -> None:
    assert SERVICES.keys() >= REQUIRED_SERVICES, f"missing: {REQUIRED_SERVICES - SERVICES.keys()}"
    assert not UNSET_WITHOUT_DEFAULT, f"no default: {sorted(set(UNSET_WITHOUT_DEFAULT))}"


def test_bind_mounts_and_the_paths_read_through_them_exist() -> None:
    problems = []
    for name, service in SERVICES.items():
        for kind, source, _ in mounts(service):
            if kind == "bind" and source.startswith(".") and not (REPO / source).exists():
                problems.append(f"{name}: bind mount source {source} does not exist")
        words = [*command_words(service.get("entrypoint")), *command_words(service.get("command"))]
        words += environment(service).values()
        for word in words:
            path = str(word).rpartition("=")[2]
            host = host_path(service, path) if path.startswith("/") else None
            if host is not None and not host.exists():
                problems.append(f"{name}: reads {path}, but {host.relative_to(REPO)} is missing")
    assert_none(problems, "paths the containers expect from the repository")


def test_dependencies_name_services_with_valid_conditions_and_no_cycle() -> None:
    problems = []
    for name, service in SERVICES.items():
        for dependency, spec in depends_on(service).items():
            condition = spec.get("condition", "service_started")
            if dependency not in SERVICES:
                problems.append(f"{name} depends on undefined service {dependency!r}")
            elif condition not in CONDITIONS:
                problems.append(f"{name} -> {dependency}: unknown condition {condition!r}")
            elif condition == "service_healthy" and not has_healthcheck(SERVICES[dependency]):
                problems.append(
                    f"{name} waits for {dependency} to be healthy; it has no healthcheck"
                )
            elif condition == "service_completed_successfully" and SERVICES[dependency].get(
                "restart", "no"
            ) not in ("no", "on-failure"):
                problems.append(f"{name} waits for {dependency} to finish, but it restarts")
    assert_none(problems, "depends_on")

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        for dependency in depends_on(SERVICES.get(name, {})):
            visit(dependency, (*path, name))

    for name in SERVICES:
        visit(name, ())


def test_every_long_running_service_has_a_healthcheck() -> None:
    missing = [name for name in SERVICES.keys() - ONE_SHOT if not has_healthcheck(SERVICES[name])]
    assert not missing, f"no healthcheck (in compose or the image's Dockerfile): {sorted(missing)}"


def test_builds_point_at_dockerfiles_and_images_are_pinned() -> None:
    problems = []
    for name, service in SERVICES.items():
        if dockerfile := dockerfile_of(service):
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
    assert_none(problems, "images")


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = {s for svc in SERVICES.values() for kind, s, _ in mounts(svc) if kind == "volume"}
    assert used <= declared, f"named volumes not declared at the top level: {used - declared}"
    assert declared <= used, f"declared volumes no service mounts: {declared - used}"


def test_no_two_services_publish_the_same_host_port() -> None:
    owners: dict[tuple[str, str], list[str]] = {}
    for name, service in SERVICES.items():
        for host, _, protocol in port_mappings(service):
            if host:
                owners.setdefault((host, protocol), []).append(name)
    clashes = {
        f"{port}/{proto}": names for (port, proto), names in owners.items() if len(names) > 1
    }
    assert not clashes, f"host ports published twice: {clashes}"
