"""Prometheus, Alertmanager and Grafana find the compose services and each other."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.compose.compose_files import (
    ALERTMANAGER_CONFIG,
    GRAFANA,
    PROMETHEUS_CONFIG,
    REPO,
    SERVICES,
    assert_none,
    check_endpoint,
    environment,
    host_path,
    load_yaml,
)
from tests.helpers import require_tool


def test_prometheus_scrapes_compose_services_with_the_app_metrics_token() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
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
        problems += check_endpoint(f"{where} target {target}", host, int(port))
    assert_none(problems, "prometheus targets")

    app_jobs = [
        job
        for job in jobs.values()
        for static in job.get("static_configs", [])
        if any(target.rpartition(":")[0] == "app" for target in static["targets"])
    ]
    assert app_jobs, "no scrape job targets the app service"
    token = environment(SERVICES["app"])["APP_METRICS_TOKEN"]
    for job in app_jobs:
        auth = job.get("authorization") or {}
        assert auth.get("type", "Bearer") == "Bearer", f"job {job['job_name']}: not a bearer token"
        assert auth.get("credentials") == token, (
            f"job {job['job_name']} sends a different token than the app's APP_METRICS_TOKEN"
        )


def test_prometheus_scrapes_every_database_exporter_with_its_role() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "postgres"]
    roles = {
        target.rpartition(":")[0]: static.get("labels", {}).get("role")
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name, service in SERVICES.items():
        dsn = environment(service).get("DATA_SOURCE_NAME")
        if dsn is None:
            continue
        server = urlsplit(dsn).hostname
        expected = "primary" if server == "postgres-primary" else "replica"
        assert name in roles, f"prometheus does not scrape {name}"
        assert roles[name] == expected, f"{name} is scraped as role {roles[name]}, not {expected}"


def test_alertmanager_routes_to_a_defined_receiver() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
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
        assert_none(check_endpoint("smtp_smarthost", host, int(port)), "alertmanager")


def test_grafana_provisions_prometheus_and_the_dashboards_use_it() -> None:
    grafana = SERVICES["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning == GRAFANA / "provisioning", "grafana/provisioning is not mounted"

    datasources = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    (prometheus,) = [ds for ds in datasources if ds["type"] == "prometheus"]
    assert prometheus["uid"] == "prometheus"
    url = urlsplit(prometheus["url"])
    assert url.hostname == "prometheus", f"datasource url {prometheus['url']} is not the service"
    assert_none(check_endpoint("datasource url", url.hostname, url.port), "grafana")

    providers = load_yaml(provisioning / "dashboards" / "dashboards.yml")["providers"]
    dashboards: list[Path] = []
    for provider in providers:
        folder = host_path(grafana, provider["options"]["path"])
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
