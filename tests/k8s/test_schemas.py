"""Every rendered object validates: core kinds against Kubernetes' schemas, the operators' kinds
against their CRDs' schemas (tests/k8s/crds/), both strictly (an unknown field fails)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.k8s.manifests import KUSTOMIZATIONS, render

CRDS = Path(__file__).parent / "crds"
# The oldest Kubernetes these manifests support: preStop `sleep` is GA from 1.30 on.
KUBERNETES_VERSION = "1.30.0"


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> its vendored openAPIV3Schema, made strict."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        key = (f"{crd['group']}/{crd['version']}", crd["kind"])
        schemas[key] = _strict(crd["openAPIV3Schema"])
    return schemas


def _strict(schema: Any) -> Any:
    """Close every object that lists its properties, as the API server's Strict field validation
    refuses a field its structural schema does not declare."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


def validate(doc: dict[str, Any]) -> None:
    """Raises with the path of the first problem."""
    schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
    if schema is not None:
        jsonschema.Draft7Validator(schema).validate(doc)
        return
    # Any other kind must be one of Kubernetes' own: an unknown one raises SchemaNotFoundError.
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def _problem(doc: dict[str, Any]) -> str | None:
    try:
        validate(doc)
    except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
        where = "/".join(str(p) for p in getattr(exc, "absolute_path", getattr(exc, "path", [])))
        return f"{doc['kind']}/{doc['metadata']['name']} at {where or '/'}: {exc.message}"
    return None


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_matches_its_schema(kustomization: str) -> None:
    docs = render(kustomization)
    problems = [problem for doc in docs if (problem := _problem(doc))]
    assert not problems, "\n".join(problems)
    kinds = {doc["kind"] for doc in docs}
    expected = {
        "Deployment", "Job", "Service", "Ingress", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "ConfigMap", "Cluster", "Pooler", "PodMonitor", "PrometheusRule",
    }  # fmt: skip
    assert expected <= kinds, f"{kustomization} lacks {sorted(expected - kinds)}"


def _first(kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(doc for doc in render("overlays/production") if doc["kind"] == kind))


@pytest.mark.parametrize(
    ("kind", "spoil"),
    [
        ("Deployment", lambda d: d["spec"]["template"]["spec"].update(containerz=[])),
        ("Deployment", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
            readinessProbe={"httpGet": {"path": "/readyz", "port": "http"}, "periodSecond": 5})),
        ("Cluster", lambda d: d["spec"].update(instance=3)),
        ("Cluster", lambda d: d["spec"].update(primaryUpdateStrategy="automatic")),
        ("Pooler", lambda d: d["spec"]["pgbouncer"].update(poolMode="statement")),
        ("Pooler", lambda d: d["spec"].pop("cluster")),
        ("PodMonitor", lambda d: d["spec"]["podMetricsEndpoints"][0].update(intervall="15s")),
        ("PrometheusRule", lambda d: d["spec"]["groups"][0]["rules"][0].pop("expr")),
    ],
)  # fmt: skip
def test_a_wrong_field_fails_validation(kind: str, spoil: Any) -> None:
    doc = _first(kind)
    assert _problem(doc) is None
    spoil(doc)
    assert _problem(doc) is not None, f"a spoiled {kind} passed validation"
