"""The images compose builds: from the lock, unprivileged, with what the services expect."""

from __future__ import annotations

import fnmatch
import json
import re

from tests.compose.compose_files import (
    PGBOUNCER_INI,
    REPO,
    SERVICES,
    dockerfile_of,
    host_path,
    instructions,
    pgbouncer_config,
)


def test_the_dockerfile_builds_from_the_lock_and_runs_unprivileged() -> None:
    dockerfile = dockerfile_of(SERVICES["app"])
    assert dockerfile is not None
    steps = instructions(dockerfile)
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


def test_pgbouncer_is_debians_package_run_unprivileged_on_the_configured_port() -> None:
    service = SERVICES["pgbouncer"]
    dockerfile = dockerfile_of(service)
    assert dockerfile is not None
    assert dockerfile.is_file(), f"{dockerfile} is missing"
    steps = instructions(dockerfile)
    (base,) = [a for i, a in steps if i == "FROM"]
    assert base.startswith("debian:"), f"not Debian: {base}"
    assert base.count(":") == 1, f"not a pinned tag: {base}"
    installs = " ".join(a for i, a in steps if i == "RUN")
    assert re.search(r"apt-get install .*\bpgbouncer\b", installs), "not Debian's pgbouncer"
    user = [a for i, a in steps if i == "USER"][-1].split(":")[0]
    assert user not in ("root", "0"), "PgBouncer refuses to run as root"
    port = int(pgbouncer_config()["pgbouncer"]["listen_port"])
    assert port in {int(a) for i, a in steps if i == "EXPOSE"}
    (command,) = [json.loads(a) for i, a in steps if i == "CMD"]
    assert host_path(service, command[-1]) == PGBOUNCER_INI, "PgBouncer reads another file"
