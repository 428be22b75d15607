"""Live: the app, postgres_exporter and a real Prometheus loaded with the repository's rules.

The server runs as its own process (tests/e2e start_server) on the test primary and replica; one
postgres_exporter per node; Prometheus scrapes all of them every second and evaluates the rules
every second. A shop's worth of traffic (tests/monitoring/traffic.py) runs through the API for the
whole module; then every recording rule and every dashboard query must return numbers, the labels
the rules select on must be the ones the app exports, and CheckoutSuccessRateLow must stay silent
while checkouts succeed and go pending once they fail.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from alembic import command

from app.bootstrap import subscribe_listeners
from app.platform.config import Settings
from app.platform.db.migrations import alembic_config
from app.platform.events.registry import ListenerRegistry
from tests.e2e.conftest import Server, start_server, stop_server
from tests.helpers import make_settings, replica_catch_up, require_tool
from tests.monitoring.stack import (
    BUILTINS,
    MODULES,
    RULES_DIR,
    PanelQuery,
    Prometheus,
    alerting_rules,
    dashboards,
    label_matchers,
    panel_queries,
    recording_rules,
    substitute,
    variable_values,
)
from tests.monitoring.traffic import Shop, Shopper, Traffic, baseline
from tools import monitor
from tools.pgstack import Stack, free_port

# The module's setup (its own database migrated, exporters, a server, Prometheus, a baseline of
# traffic scraped and evaluated) counts against the first test's timeout: on a loaded machine it
# takes minutes, so the hang guard is wider here than the suite's 300 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

LIVE_DB = "live_monitoring"
METRICS_TOKEN = "live-test-metrics-token"
SECRET_KEY = "live-test-secret-key-0123456789abcdef"
WEBHOOK_SECRET = "live-test-webhook-secret-0123456789abcdef"
# The detector's threshold on the live server: see test_n_plus_one_detections_reach_prometheus.
N_PLUS_ONE_THRESHOLD = 2
SERVER_ENV = {
    "APP_METRICS_TOKEN": METRICS_TOKEN,
    "APP_SECRET_KEY": SECRET_KEY,
    "APP_PAYMENTS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    # The console backend logs each email, link included, to the server's log: that is where
    # the shoppers read their verification links (the memory backend lives in the server process).
    "APP_EMAIL_BACKEND": "console",
    "APP_EVENTS_POLL_INTERVAL_SECONDS": "0.1",
    "APP_PAYMENTS_FAKE_PROVIDER_LATENCY_MS": "0",
    # Cheap hashing, as in every test; production parameters are the defaults.
    "APP_AUTH_ARGON2_TIME_COST": "1",
    "APP_AUTH_ARGON2_MEMORY_KIB": "1024",
    "APP_AUTH_ARGON2_PARALLELISM": "1",
    # Every shopper (and every test of the session, the counts are in the database) calls from
    # 127.0.0.1; the per-account limits still apply.
    "APP_AUTH_LOGIN_FAILURES_PER_IP": "10000",
    "APP_AUTH_RESET_REQUESTS_PER_IP": "10000",
    "APP_DB_N_PLUS_ONE_STRICT": "false",
    "APP_DB_N_PLUS_ONE_THRESHOLD": str(N_PLUS_ONE_THRESHOLD),
}


@dataclass
class Live:
    prometheus: Prometheus
    server: Server
    settings: Settings
    shop: Shop
    shoppers: list[Shopper]
    traffic: Traffic


def _finite(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples that are numbers: a ratio of nothing (NaN) or an empty quantile is no data."""
    return [s for s in result if math.isfinite(float(s["value"][1]))]


def _test_only_rules(folder: Path) -> Path:
    """A copy of CheckoutSuccessRateLow with a 1 s `for:`, told apart by a `copy` label."""
    (rule,) = [r for r in alerting_rules() if r["alert"] == "CheckoutSuccessRateLow"]
    copy = {k: v for k, v in rule.items() if not k.startswith("_")}
    copy["for"] = "1s"
    copy["labels"] = {**copy.get("labels", {}), "copy": "live-test"}
    path = folder / "live-test-only.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "live_test_only", "rules": [copy]}]}))
    return path


@pytest.fixture(scope="module")
def live_db(migrated: Stack) -> Iterator[str]:
    """A database of the live server's own: the session's other tests leave rate-limit counts,
    outbox deliveries and accounts in the shared one, which would count in these metrics."""
    migrated.primary.psql(f"DROP DATABASE IF EXISTS {LIVE_DB} WITH (FORCE)")
    migrated.primary.psql(f"CREATE DATABASE {LIVE_DB} OWNER app")
    command.upgrade(alembic_config(migrated.url(migrated.primary_port, db=LIVE_DB)), "head")
    replica_catch_up(migrated)
    yield LIVE_DB
    migrated.primary.psql(f"DROP DATABASE IF EXISTS {LIVE_DB} WITH (FORCE)")


@pytest.fixture(scope="module")
def live(migrated: Stack, live_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    require_tool("prometheus", monitor.INSTALL_HINT)
    require_tool(
        monitor.EXPORTER_BINARIES[0], "Debian/Ubuntu: apt-get install prometheus-postgres-exporter"
    )
    folder = tmp_path_factory.mktemp("live")
    rules = folder / "rules"
    shutil.copytree(RULES_DIR, rules)
    _test_only_rules(rules)

    primary_url = migrated.url(migrated.primary_port, db=live_db)
    replica_url = migrated.url(migrated.replica_port, db=live_db)
    settings = make_settings(
        migrated,
        database_url=primary_url,
        replica_database_url=replica_url,
        secret_key=SECRET_KEY,
        payments_webhook_secret=WEBHOOK_SECRET,
    )
    exporters: dict[str, monitor.Service] = {}
    server: Server | None = None
    try:
        # The exporters start while the server does: each takes seconds on a busy machine.
        for role, db_port in (
            ("primary", migrated.primary_port),
            ("replica", migrated.replica_port),
        ):
            dsn = f"postgresql://app@127.0.0.1:{db_port}/postgres?sslmode=disable"
            exporters[role] = monitor.start_postgres_exporter(
                dsn, free_port(), folder / f"exporter-{role}.log"
            )
        env = {
            **SERVER_ENV,
            "APP_DATABASE_URL": primary_url,
            "APP_REPLICA_DATABASE_URL": replica_url,
        }
        server = start_server(migrated, folder / "server.log", extra_env=env)
        for exporter in exporters.values():
            monitor.wait_ready(exporter, "/metrics")
        prom_port = free_port()
        config = monitor.render_prometheus_config(
            app_target=server.base_url.removeprefix("http://"),
            metrics_token=METRICS_TOKEN,
            prometheus_target=f"127.0.0.1:{prom_port}",
            alertmanager_target=None,
            postgres_targets={role: s.url.removeprefix("http://") for role, s in exporters.items()},
            rule_files=[str(rules / "*.yml")],
            scrape_interval="1s",
            evaluation_interval="1s",
            environment="live-test",
        )
        config_path = folder / "prometheus" / "prometheus.yml"
        config_path.parent.mkdir()
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        service = monitor.start_prometheus(
            config_path, folder / "prometheus" / "data", prom_port, folder / "prometheus" / "log"
        )
        with (
            monitor.running(service),
            httpx.Client(base_url=server.base_url, timeout=10) as client,
            httpx.Client(base_url=server.base_url, timeout=10) as traffic_client,
        ):
            prom = Prometheus(service.url)
            shop = Shop(client, settings, server.log, migrated, live_db)
            # The catalog and the first accounts while Prometheus discovers its targets (its
            # first scrape comes seconds after it is ready); counters only tell what happens
            # after Prometheus's first look at them, so the rest waits for that.
            shop.create_products()
            shoppers = [shop.signup() for _ in range(3)]
            _eventually(lambda: prom.result('up{job="app"} == 1'), 30)
            baseline(shop, shoppers, lambda series: all(prom.result(x) for x in series))
            # The loop gets its own connection pool; it shares the catalog and the tallies.
            loop_shop = dataclasses.replace(shop, client=traffic_client)
            with Traffic(loop_shop, shoppers) as traffic:
                # rate() needs two samples in its window and a recording rule reading another
                # needs both evaluated: let every target be scraped and the rules evaluated a
                # few times after the baseline, before the tests, which then query once each.
                _eventually(lambda: len(prom.result("count_over_time(up[1m]) >= 6")) >= 3, 60)
                evaluations = _evaluations(prom)
                _eventually(lambda: _evaluations(prom) >= evaluations + 3, 30)
                traffic.check()
                yield Live(prom, server, settings, shop, shoppers, traffic)
                traffic.check()
    finally:
        for exporter in exporters.values():
            monitor.stop(exporter)
        if server is not None:
            stop_server(server)


def _evaluations(prom: Prometheus) -> int:
    """How often the rules have been evaluated (one job:up:sum sample per evaluation)."""
    found = prom.result('count_over_time(job:up:sum{job="app"}[1h])')
    return int(float(found[0]["value"][1])) if found else 0


def _eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    # Never less than a minute: a poll only waits that long when the machine is that busy.
    deadline = time.monotonic() + max(timeout, 60.0)
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.mark.parametrize("job", ["prometheus", "postgres", "app"])
def test_every_target_is_scraped(live: Live, job: str) -> None:
    up = live.prometheus.result(f'min(up{{job="{job}"}}) == 1')
    assert up, f"job {job}: {live.prometheus.result(f'up{{job={job!r}}}')}"


@pytest.mark.parametrize("rule", recording_rules(), ids=lambda r: r["record"])
def test_every_recording_rule_returns_data(live: Live, rule: dict[str, Any]) -> None:
    result = live.prometheus.result(rule["record"])
    assert _finite(result), f"{rule['record']} has no numbers after the traffic: {result}"


@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: q.id)
def test_every_dashboard_query_returns_data(live: Live, query: PanelQuery) -> None:
    board = dashboards()[query.dashboard]
    expr = substitute(query.expr, {**variable_values(board), **BUILTINS, "__rate_interval": "1m"})
    result = live.prometheus.result(expr)
    assert _finite(result), f"{query.id}: {expr} has no numbers after the traffic: {result}"


# Where a rule or panel compares a label with a value: "a = b" and "a =~ b" must select something,
# "a != b" must exclude something that exists (a misspelt exclusion excludes nothing, as
# outcome!="success" once did).
@pytest.mark.parametrize("matcher", label_matchers(), ids=lambda m: f"{m[0]}{{{m[1]}{m[2]}{m[3]}}}")
def test_every_label_value_the_rules_and_panels_select_is_exported(
    live: Live, matcher: tuple[str, str, str, str]
) -> None:
    metric, label, op, value = matcher
    positive = {"=": "=", "!=": "=", "=~": "=~", "!~": "=~"}[op]
    selector = f'{metric}{{{label}{positive}"{value}"}}'
    if not live.prometheus.result(selector):
        seen = live.prometheus.result(f"count by ({label}) ({metric})")
        values = sorted(s["metric"].get(label, "") for s in seen)
        raise AssertionError(f"{selector}: no such series; {label} values exported: {values}")


def test_http_metrics_carry_the_owning_module(live: Live) -> None:
    modules = live.prometheus.result("count by (module) (http_requests_total)")
    assert {s["metric"]["module"] for s in modules} == MODULES, modules
    # The traffic's provider failures (502s on /v1/checkout) are payments' 5xx, no one else's.
    errors = live.prometheus.result("module:http_requests_5xx:ratio_rate5m > 0")
    assert {s["metric"]["module"] for s in errors} == {"payments"}, errors


def test_every_listener_reports_its_backlog_and_notifications_deliver_without_failures(
    live: Live,
) -> None:
    registry = ListenerRegistry()
    subscribe_listeners(live.settings, registry)
    pending = live.prometheus.result("listener:outbox_pending:max")
    assert {s["metric"]["listener"] for s in pending} == set(registry.names())
    # Every event the traffic published was delivered, so the failure ratio
    # NotificationDeliveriesFailing reads is 0 for each notifications listener it selects.
    ratios = _finite(
        live.prometheus.result(
            'listener:event_deliveries_failures:ratio_rate15m{listener=~"notifications[.:_].+"}'
        )
    )
    delivered = {s["metric"]["listener"]: float(s["value"][1]) for s in ratios}
    assert set(delivered) >= {
        "notifications.send_verification_email",
        "notifications.send_receipt",
        "notifications.refund_notice",
        "notifications.payment_failed_notice",
        "notifications.send_password_reset_email",
    }, delivered
    assert set(delivered.values()) == {0.0}, delivered
    outcomes = live.prometheus.result("count by (outcome) (event_deliveries_total)")
    assert {s["metric"]["outcome"] for s in outcomes} == {"delivered"}, outcomes


def test_business_counters_count_what_the_traffic_did(live: Live) -> None:
    """The business series against the shop's own tally (the loop keeps adding, hence >=)."""
    counts = dict(live.shop.counts)
    expected = {
        'auth_signups_total{stage="started"}': counts["signup_started"],
        'auth_signups_total{stage="verified"}': counts["signup_verified"],
        'auth_logins_total{outcome="success"}': counts["login_success"],
        'auth_logins_total{outcome="invalid_credentials"}': counts["login_failure"],
        'analytics_events_total{type="search"}': counts["search"],
        'analytics_events_total{type="search_click"}': counts["search_click"],
        'payments_checkouts_total{outcome="succeeded"}': counts["checkout:tok_success"],
        'payments_checkouts_total{outcome="pending"}': counts["checkout:tok_pending"],
        'payments_checkouts_total{outcome="error"}': counts["checkout:tok_provider_error"],
        "payments_refunds_total": counts["refund"],
        'payments_webhooks_total{outcome="applied"}': counts["webhook_applied"],
    }
    for selector, driven in expected.items():
        assert driven > 0, selector

        def scraped(selector: str = selector, driven: int = driven) -> bool:
            found = live.prometheus.result(f"sum({selector})")
            return bool(found) and float(found[0]["value"][1]) >= driven

        # Polled: the counts above reach Prometheus at its next scrapes, however late they are.
        assert _eventually(scraped), f"{selector}: {live.prometheus.result(f'sum({selector})')}"
    # Some signups are never verified: the completion ratio is a real one, under 1.
    (ratio,) = live.prometheus.result("job:auth_signups_completion:ratio_rate1h")
    assert 0 < float(ratio["value"][1]) < 1, ratio


def test_n_plus_one_detections_reach_the_panel_and_the_alert(live: Live) -> None:
    """db_n_plus_one_total from the real detector, through the panel's series to the alert.

    The shipped app has no N+1 to trigger (the suite runs the detector strict, so none can be
    merged) and no test-only route with one. Its threshold is a setting, though: at 2 on this
    server, a request running any statement shape twice counts, e.g. the login's two rate-limit
    look-ups (per account and per address). The series, its labels, the panel and the alert are
    the real ones; that these routes are counted says nothing about them.
    """
    detected = live.prometheus.result("sum by (module, route) (db_n_plus_one_total)")
    assert detected, f"no N+1 counted at threshold {N_PLUS_ONE_THRESHOLD}"
    routes = {(s["metric"]["module"], s["metric"]["route"]) for s in detected}
    assert {module for module, _ in routes} <= MODULES, routes

    def firing() -> list[dict[str, Any]]:
        return [
            a
            for a in live.prometheus.alerts()
            if a["labels"]["alertname"] == "NPlusOneQueries" and a["state"] == "firing"
        ]

    # No `for:`: the first evaluation that sees an increase fires it.
    alerts = _eventually(firing, 20)
    assert alerts, f"NPlusOneQueries did not fire for {routes}"
    assert {(a["labels"]["module"], a["labels"]["route"]) for a in alerts} <= routes
    assert {a["labels"]["severity"] for a in alerts} == {"ticket"}
    assert alerts[0]["annotations"]["runbook_url"] == "docs/runbooks/NPlusOneQueries.md"


def test_checkout_success_rate_low_is_silent_above_95_and_goes_pending_below(live: Live) -> None:
    prom = live.prometheus
    # Above: all checkouts so far but two succeeded, with the traffic guard met.
    guard = "job:payments_checkouts_decided:rate15m >= 20 / 900"
    assert _eventually(lambda: prom.result(guard), 30), prom.result(
        "job:payments_checkouts_decided:rate15m * 900"
    )
    time.sleep(2)  # two evaluations: the copy (for: 1s) would be pending, then firing
    assert prom.result(guard)
    (ratio,) = prom.result("job:payments_checkouts_success:ratio_rate15m")
    assert 0.95 <= float(ratio["value"][1]) < 1, ratio
    history = prom.result('count_over_time(ALERTS{alertname="CheckoutSuccessRateLow"}[15m])')
    assert not history, f"pending or firing while above 95%: {history}"

    # Below: the loop stops checking out, then declines and provider errors bring the ratio
    # to about 83%.
    live.traffic.pause_checkouts()
    succeeded = live.shop.counts["checkout:tok_success"]
    failed = live.shop.counts["checkout:tok_provider_error"]
    tokens = ("tok_declined", "tok_insufficient_funds", "tok_provider_error")
    for n in range(math.ceil(succeeded * 0.2) - failed):
        live.shop.checkout(live.shoppers[n % len(live.shoppers)], tokens[n % len(tokens)])

    def states() -> dict[str, str]:
        return {
            alert["labels"].get("copy", "shipped"): alert["state"]
            for alert in prom.alerts()
            if alert["labels"]["alertname"] == "CheckoutSuccessRateLow"
        }

    seen = _eventually(lambda: states().get("live-test") == "firing" and states(), 30)
    assert seen, f"CheckoutSuccessRateLow did not fire: {states()}"
    # The shipped rule (for: 5m) is pending on the same data.
    assert seen.get("shipped") == "pending", seen
    (ratio,) = prom.result("job:payments_checkouts_success:ratio_rate15m")
    assert float(ratio["value"][1]) < 0.95, ratio
    (alert,) = [a for a in prom.alerts() if a["labels"].get("copy") == "live-test"]
    assert alert["labels"]["module"] == "payments"
    assert alert["labels"]["severity"] == "page"
    assert "over the last 15 minutes, threshold 95%" in alert["annotations"]["description"]
