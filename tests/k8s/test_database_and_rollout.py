"""The database, its poolers and monitoring fit the app; the rollout applies everything in order.

The connection budget while the app connects directly, CloudNativePG's services and secret names
as the app's environment uses them, the poolers in transaction mode, the series the alert rules
read produced by the PodMonitors, and rollout.sh's selectors covering every rendered object.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.k8s.manifests import (
    K8S,
    KUSTOMIZATIONS,
    OVERLAYS,
    REPO,
    config_map,
    environment,
    objects,
    one,
    render,
)

ROLLOUT = K8S / "rollout.sh"
RULES = REPO / "prometheus" / "rules"


def _env(kustomization: str, name: str) -> dict[str, str]:
    deployment = one(kustomization, "Deployment", name)
    return environment(kustomization, deployment["spec"]["template"]["spec"]["containers"][0])


def _per_worker(env: dict[str, str]) -> int:
    # app/platform/events/dispatcher.py: deliveries (concurrency + 4 overflow), control
    # (3 + concurrency overflow), and one LISTEN connection.
    concurrency = int(env["APP_EVENTS_CONCURRENCY"])
    return (concurrency + 4) + (3 + concurrency) + 1


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_primary_takes_every_direct_connection_at_full_scale(kustomization: str) -> None:
    """Without the pooler each pod keeps its own pool: the HPA's maximum must fit."""
    api, worker = _env(kustomization, "saas-backend"), _env(kustomization, "saas-backend-worker")
    host = urlsplit(api["APP_DATABASE_URL"]).hostname
    assert host is not None
    assert "pgbouncer" not in host
    hpa = one(kustomization, "HorizontalPodAutoscaler", "saas-backend")["spec"]
    workers = one(kustomization, "Deployment", "saas-backend-worker")["spec"]["replicas"]
    per_pod = int(api["APP_DB_POOL_SIZE"]) + int(api["APP_DB_MAX_OVERFLOW"])
    migrations = 1
    # CloudNativePG keeps superuser_reserved_connections (3) and its own instance manager's.
    reserved = 10
    demand = hpa["maxReplicas"] * per_pod + workers * _per_worker(worker) + migrations
    cluster = one(kustomization, "Cluster", "saas-db")["spec"]
    limit = int(cluster["postgresql"]["parameters"]["max_connections"])
    assert demand + reserved <= limit, (
        f"{hpa['maxReplicas']} API pods x {per_pod} + {workers} workers x {_per_worker(worker)}"
        f" + {migrations} = {demand} connections, max_connections {limit} - {reserved} reserved"
    )
    assert hpa["minReplicas"] <= hpa["maxReplicas"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_cluster_and_its_poolers_are_what_the_app_connects_to(kustomization: str) -> None:
    cluster = one(kustomization, "Cluster", "saas-db")
    spec = cluster["spec"]
    assert spec["instances"] == 3, "one primary and two replicas"
    parameters = spec["postgresql"]["parameters"]
    assert any(key.startswith("pg_stat_statements.") for key in parameters), (
        "no pg_stat_statements parameter: the operator would not preload the library"
    )
    initdb = spec["bootstrap"]["initdb"]
    api = _env(kustomization, "saas-backend")
    for variable, service in [("APP_DATABASE_URL", "rw"), ("APP_REPLICA_DATABASE_URL", "ro")]:
        url = urlsplit(api[variable])
        assert url.hostname == f"{cluster['metadata']['name']}-{service}", variable
        assert url.path.lstrip("/") == initdb["database"], f"{variable}: another database"
    assert any("pg_monitor" in sql for sql in initdb["postInitApplicationSQL"]), (
        "the app role cannot read replay lag for /readyz"
    )
    poolers = {p["spec"]["type"]: p for p in objects(kustomization, "Pooler")}
    assert set(poolers) == {"rw", "ro"}
    for kind, pooler in poolers.items():
        assert pooler["spec"]["cluster"]["name"] == cluster["metadata"]["name"], kind
        assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction", kind
        assert pooler["metadata"]["name"] != cluster["metadata"]["name"], "names must differ"
    sizes = {kind: p["spec"]["pgbouncer"]["parameters"] for kind, p in poolers.items()}
    assert sizes["rw"] == sizes["ro"], "the two poolers are sized differently"


def _rule_expressions() -> list[str]:
    exprs = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            exprs += [str(rule["expr"]) for rule in group["rules"]]
    return exprs


def _relabeled_job(monitor: dict) -> str:  # type: ignore[type-arg]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    jobs = [r["replacement"] for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert len(jobs) == 1, f"{monitor['metadata']['name']}: job is not set once"
    return str(jobs[0])


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_alert_rules_find_their_series_under_the_podmonitors(kustomization: str) -> None:
    exprs = "\n".join(_rule_expressions())
    jobs = set(re.findall(r'job="([^"]+)"', exprs))
    monitors = {m["metadata"]["name"]: m for m in objects(kustomization, "PodMonitor")}
    produced = {_relabeled_job(m) for m in monitors.values()}
    assert jobs <= produced, f"rules select jobs no PodMonitor produces: {jobs - produced}"
    database = monitors["saas-db"]["spec"]["podMetricsEndpoints"][0]
    renamed = {
        r["replacement"]
        for r in database["metricRelabelings"]
        if r.get("targetLabel") == "__name__"
    }
    used = set(re.findall(r"(?<![\w:])(pg_[a-z_]+)(?![\w:])", exprs))
    assert used <= renamed, f"the rules read {sorted(used - renamed)}, which nothing produces"
    roles = [r for r in database["relabelings"] if r.get("targetLabel") == "role"]
    assert roles, "the rules tell the primary from the replicas by `role`"
    app = monitors["saas-backend"]["spec"]["podMetricsEndpoints"][0]
    assert app["path"] == "/metrics"
    token = app["authorization"]["credentials"]
    secrets = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in one(kustomization, "Deployment", "saas-backend")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
        if e["name"] == "APP_METRICS_TOKEN"
    }
    assert secrets == {(token["name"], token["key"])}, "Prometheus sends another token"


def _selectors() -> list[str]:
    text = ROLLOUT.read_text(encoding="utf-8")
    return re.findall(r"^apply '([^']+)'", text, flags=re.MULTILINE)


def _matches(selector: str, labels: dict[str, str]) -> bool:
    key, _, rest = selector.partition(" in ")
    if rest:
        return labels.get(key) in {v.strip() for v in rest.strip("()").split(",")}
    key, _, value = selector.partition("=")
    return labels.get(key) == value


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_rollout_applies_every_object_once_with_migrations_before_the_pods(
    overlay: str,
) -> None:
    selectors = _selectors()
    order = {}
    for doc in render(f"overlays/{overlay}"):
        labels = doc["metadata"].get("labels") or {}
        steps = [i for i, selector in enumerate(selectors) if _matches(selector, labels)]
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        assert len(steps) == 1, f"{name} is applied by {len(steps)} steps of rollout.sh"
        order[doc["kind"], doc["metadata"]["name"].rsplit("-", 1)[0]] = steps[0]
        order[doc["kind"], doc["metadata"]["name"]] = steps[0]
    job = re.search(r"^job=(\S+)$", ROLLOUT.read_text(), flags=re.MULTILINE)
    assert job, "rollout.sh names no Job"
    migrate = order["Job", job.group(1)]
    assert order["Cluster", "saas-db"] < migrate, "the Job would run before the database"
    assert order["ConfigMap", "saas-backend-config"] < migrate, "the Job would lack its config"
    for deployment in ("saas-backend", "saas-backend-worker"):
        assert migrate < order["Deployment", deployment], f"{deployment} before migrations"
    declared = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    namespace = subprocess.run(
        ["sed", "-n", "s/^namespace: *//p", str(K8S / "overlays" / overlay / "kustomization.yaml")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert namespace == declared["namespace"], "rollout.sh reads another namespace"


def test_the_rollout_script_parses() -> None:
    result = subprocess.run(["bash", "-n", str(ROLLOUT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Path(ROLLOUT).stat().st_mode & 0o111, "rollout.sh is not executable"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_only_change_what_is_theirs(overlay: str) -> None:
    base = config_map("base", "saas-backend-config")
    ours = config_map(f"overlays/{overlay}", "saas-backend-config")
    assert ours.keys() == base.keys(), f"{overlay} adds or drops settings"
    assert ours["APP_ENV"] in ("staging", "production")
