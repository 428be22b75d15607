"""The manifests give the app what it reads, where it listens, and run commands it has.

Every setting comes from the ConfigMap or a Secret reference; the rendered environment parses
through the app's own Settings; ports, probe paths, the CLI commands, the image and the user id
agree with the app, the Dockerfile and compose.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from pydantic import SecretStr

from app.platform.config import Settings
from tests.k8s.manifests import (
    KUSTOMIZATIONS,
    OVERLAYS,
    REPO,
    SECRET_PLACEHOLDER,
    config_map,
    environment,
    objects,
    one,
    references,
    render,
    secret_refs,
    workloads,
)

# Variables in the pods that are not APP_ settings, each with the reader that needs it.
NOT_SETTINGS = {
    "DB_PRIMARY_HOST": "APP_DATABASE_URL",
    "DB_REPLICA_HOST": "APP_REPLICA_DATABASE_URL",
    "DB_USERNAME": "APP_DATABASE_URL",
    "DB_PASSWORD": "APP_DATABASE_URL",
}


def _setting_names() -> set[str]:
    return {f"APP_{name.upper()}" for name in Settings.model_fields}


def _secret_settings() -> set[str]:
    """The settings typed SecretStr, plus the database URLs (they carry the password)."""
    names = {"APP_DATABASE_URL", "APP_REPLICA_DATABASE_URL"}
    for name, field in Settings.model_fields.items():
        if SecretStr in (field.annotation, *typing.get_args(field.annotation)):
            names.add(f"APP_{name.upper()}")
    return names


def _env_example() -> set[str]:
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^(APP_[A-Z0-9_]+)=", text, flags=re.MULTILINE))


def _app_containers(kustomization: str) -> list[tuple[str, dict[str, Any]]]:
    return [(where, spec["containers"][0]) for where, spec in workloads(kustomization)]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_setting_is_set_by_the_configmap_or_a_secret_reference(kustomization: str) -> None:
    settings, example = _setting_names(), _env_example()
    assert example <= settings, f".env.example lists unknown settings {sorted(example - settings)}"
    for where, container in _app_containers(kustomization):
        env_names = {entry["name"] for entry in container.get("env") or []}
        from_map = set(config_map(kustomization, "saas-backend-config"))
        provided = env_names | from_map
        assert settings <= provided, f"{where} leaves unset: {sorted(settings - provided)}"
        unknown = {n for n in provided if n not in settings and n not in NOT_SETTINGS}
        assert not unknown, f"{where}: variables the app does not read (typos?): {unknown}"
        assert not env_names & from_map, f"{where}: set twice: {env_names & from_map}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_secrets_are_secret_references_never_values(kustomization: str) -> None:
    values = config_map(kustomization, "saas-backend-config")
    for where, container in _app_containers(kustomization):
        refs = secret_refs(container)
        literal = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        for name in sorted(_secret_settings()):
            assert name not in values, f"{where}: {name} is in a ConfigMap"
            if name in refs:
                continue
            # A URL is built from the Secret's password, never written out.
            assert name in literal, f"{where}: {name} is neither a Secret reference nor built"
            assert "DB_PASSWORD" in references(literal[name]), f"{where}: {name} has no password"
        assert refs["DB_PASSWORD"] == {"name": "saas-db-app", "key": "password"}
    assert not objects(kustomization, "Secret"), "a Secret with values is part of the manifests"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_app_accepts_the_rendered_environment(
    kustomization: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for where, container in _app_containers(kustomization):
        env = environment(kustomization, container)
        for variable in [v for v in os.environ if v.startswith("APP_")]:
            monkeypatch.delenv(variable)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        if env.get("APP_ENV") == "production":
            # No real payment adapter ships yet: production refuses the fake, and only that.
            with pytest.raises(ValueError, match="refusing to start") as refused:
                Settings(_env_file=None)
            problems = str(refused.value).split("refusing to start with APP_ENV=production: ")[1]
            assert problems.startswith("APP_PAYMENTS_PROVIDER=fake charges nothing real"), where
            assert ";" not in problems.split("[type=")[0], f"{where}: more than the provider"
            # With a real adapter named there, everything else the pod gets is accepted.
            monkeypatch.setenv("APP_ENV", "staging")
            monkeypatch.setenv("APP_PAYMENTS_ALLOW_FAKE_PROVIDER", "true")
        settings = Settings(_env_file=None)
        assert settings.env in ("staging", "production"), where
        assert settings.secret_key.get_secret_value() == SECRET_PLACEHOLDER
        primary, replica = (
            urlsplit(str(settings.database_url)),
            urlsplit(str(settings.replica_database_url)),
        )
        assert (primary.hostname, primary.port) == ("saas-db-rw", 5432), where
        assert (replica.hostname, replica.port) == ("saas-db-ro", 5432), where
        assert primary.password == SECRET_PLACEHOLDER, f"{where}: $(DB_PASSWORD) not expanded"
        assert settings.smtp_password is None, f"{where}: the optional SMTP password is required"
        assert not settings.events_dispatcher_enabled, f"{where}: API pods would dispatch too"


def _dockerfile() -> list[tuple[str, str]]:
    steps = []
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith(("#", " ")):
            instruction, _, arguments = line.partition(" ")
            steps.append((instruction.upper(), arguments.strip()))
    return steps


def _served(path: str) -> bool:
    """Whether the app has a GET route for ``path`` (routes as the router itself matches them)."""
    from starlette.routing import Match

    from app.main import create_app

    scope = {"type": "http", "path": path, "method": "GET", "root_path": "", "headers": []}
    routes = create_app(Settings(env="test")).router.routes
    return any(route.matches(scope)[0] == Match.FULL for route in routes)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_ports_and_probes_match_the_app(kustomization: str) -> None:
    deployment = one(kustomization, "Deployment", "saas-backend")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = environment(kustomization, container)
    port = int(env["APP_PORT"])
    exposed = {int(a.split("/")[0]) for i, a in _dockerfile() if i == "EXPOSE"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}, f"the pod declares {ports}, the app listens on {port}"
    assert port in exposed, f"the image exposes {exposed}, the app listens on {port}"
    assert env["APP_HOST"] == "0.0.0.0", "the app would listen on loopback only"  # noqa: S104
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in (port, "http"), probe
    for path in ("/healthz", "/readyz", "/metrics", "/nowhere"):
        assert _served(path) == (path != "/nowhere"), f"the app does not serve {path}"
    # /readyz may spend the readiness timeout on the primary and a connect on the replica.
    budget = float(env["APP_READINESS_TIMEOUT_SECONDS"]) + float(
        env["APP_DB_CONNECT_TIMEOUT_SECONDS"]
    )
    assert container["readinessProbe"]["timeoutSeconds"] > budget
    service = one(kustomization, "Service", "saas-backend")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items(), "the Service selects no pod"
    for kind in ("PodDisruptionBudget", "PodMonitor", "NetworkPolicy"):
        selector = one(kustomization, kind, "saas-backend")["spec"]
        selector = selector.get("selector", selector.get("podSelector"))
        assert selector["matchLabels"].items() <= labels.items(), f"{kind} selects no API pod"
    hpa = one(kustomization, "HorizontalPodAutoscaler", "saas-backend")["spec"]["scaleTargetRef"]
    assert (hpa["kind"], hpa["name"]) == ("Deployment", "saas-backend")
    assert "replicas" not in deployment["spec"], "an apply would reset the HPA's replica count"


def _cli_command(words: list[str]) -> tuple[str, set[str]]:
    """The app CLI's command for `python -m app ...` words, and the options it accepts."""
    import app.__main__ as cli

    assert words[:3] == ["python", "-m", "app"], f"not the app's CLI: {words}"
    group = typer.main.get_command(cli.app)
    command = group.commands[words[3]]  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    return command.name, options


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_workloads_run_commands_the_cli_has(kustomization: str) -> None:
    expected = {
        "Deployment/saas-backend": "serve",
        "Deployment/saas-backend-worker": "worker",
        "Job/saas-backend-migrate": "migrate",
    }
    seen = {}
    for where, spec in workloads(kustomization):
        words = spec["containers"][0]["command"]
        name, options = _cli_command(words)
        seen[where] = name
        flags = [w for w in words[4:] if w.startswith("--")]
        assert set(flags) <= options, f"{where}: {name} has no {set(flags) - options}"
    assert seen == expected
    worker = one(kustomization, "Deployment", "saas-backend-worker")["spec"]["template"]["spec"]
    words = worker["containers"][0]["command"]
    heartbeat = words[words.index("--heartbeat-file") + 1]
    probe = " ".join(worker["containers"][0]["livenessProbe"]["exec"]["command"])
    assert f"'{heartbeat}'" in probe, "the liveness probe watches another file"
    mounts = [m["mountPath"] for m in worker["containers"][0]["volumeMounts"]]
    assert any(Path(heartbeat).is_relative_to(m) for m in mounts), "heartbeat not writable"


def _compose_images() -> set[str]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    built = [s for s in compose["services"].values() if s.get("build", {}).get("context") == "."]
    assert built, "compose builds nothing from the repository's Dockerfile"
    return {s.get("image", "<untagged>") for s in built}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_images_and_the_user_agree_with_the_dockerfile_and_compose(kustomization: str) -> None:
    documented = re.search(r"docker build -t (\S+) \.", (REPO / "Dockerfile").read_text())
    assert documented, "the Dockerfile no longer documents its image name"
    compose = {image.rsplit(":", 1)[0] for image in _compose_images()}
    assert compose == {documented.group(1)}, f"compose tags {compose}"
    kustomization_file = yaml.safe_load(
        (REPO / "deploy" / "k8s" / kustomization / "kustomization.yaml").read_text()
    )
    base = yaml.safe_load((REPO / "deploy/k8s/base/kustomization.yaml").read_text())
    names = {i["name"] for i in base["images"]} | {
        i["name"] for i in kustomization_file.get("images", [])
    }
    assert names == {documented.group(1)}, f"kustomize renames images {names}"
    user = [a for i, a in _dockerfile() if i == "USER"][-1].split(":")[0]
    for where, spec in workloads(kustomization):
        image = spec["containers"][0]["image"]
        repository = image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
        assert repository == documented.group(1), f"{where} runs {image}"
        assert ":" in image, f"{where}: {image} has no tag"
        assert not image.endswith(":latest"), f"{where}: {image} floats on :latest"
        assert str(spec["securityContext"]["runAsUser"]) == user, f"{where}: not USER {user}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_public_url_is_the_ingress_host(overlay: str) -> None:
    url = urlsplit(config_map(f"overlays/{overlay}", "saas-backend-config")["APP_PUBLIC_BASE_URL"])
    ingress = one(f"overlays/{overlay}", "Ingress", "saas-backend")["spec"]
    hosts = [rule["host"] for rule in ingress["rules"]]
    assert hosts == [url.hostname], f"links in emails point at {url.hostname}, ingress {hosts}"
    tls_hosts = {h for tls in ingress.get("tls", []) for h in tls["hosts"]}
    assert (url.scheme == "https") == (url.hostname in tls_hosts), "scheme and TLS disagree"
    namespaces = {doc["metadata"].get("namespace") for doc in render(f"overlays/{overlay}")}
    namespaces.discard(None)  # the Namespace itself
    assert len(namespaces) == 1, f"objects in several namespaces: {namespaces}"
