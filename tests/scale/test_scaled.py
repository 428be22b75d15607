"""Two app instances and two workers behind a real HAProxy (tools/scaled.py, `make run-scaled`),
on a primary and a replica of the module's own whose replay is held back by
``recovery_min_apply_delay``: what one instance wrote, another reads back (the consistency token),
each event is delivered once, and Prometheus adds the instances up."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.platform.db.migrations import alembic_config
from app.platform.security import create_access_token
from tests.helpers import make_settings, replica_catch_up, require_tool, wait_for
from tests.monitoring.stack import RULES_DIR, Prometheus, prometheus, recording_rules
from tools.pgstack import Stack, free_port, temporary_stack
from tools.scaled import Scaled

APPLY_DELAY_SECONDS = 5  # well past a request's round trip, well inside the 30 s lag limit
ROUNDS = 12
PASSWORD = "Scaled-Pass-2024"


@pytest.fixture(scope="module")
def delayed_stack() -> Iterator[Stack]:
    from alembic import command

    stack = temporary_stack()
    atexit.register(stack.clean)
    stack.start()
    command.upgrade(alembic_config(stack.primary_url), "head")
    replica_catch_up(stack, timeout=60)
    stack.replica.psql(f"ALTER SYSTEM SET recovery_min_apply_delay = '{APPLY_DELAY_SECONDS}s'")
    stack.replica.psql("SELECT pg_reload_conf()")
    yield stack
    stack.clean()


@pytest.fixture(scope="module")
def scaled(delayed_stack: Stack) -> Iterator[Scaled]:
    require_tool("haproxy", "Debian/Ubuntu: apt-get install haproxy")
    root = Path(tempfile.mkdtemp(prefix="scaled-test-"))
    env = {
        "APP_ENV": "test",
        "APP_LOG_JSON": "true",
        "APP_DATABASE_URL": delayed_stack.primary_url,
        "APP_REPLICA_DATABASE_URL": delayed_stack.replica_url,
        "APP_DB_REPLICA_CHECK_INTERVAL_SECONDS": "0.5",
        # Held back on purpose: after an idle spell the first writes would otherwise count as
        # minutes of lag (the last replayed commit is that old) and send every read away.
        "APP_DB_REPLICA_MAX_LAG_SECONDS": "3600",
        "APP_PAYMENTS_CATALOG_CACHE": "false",
        "APP_PAYMENTS_FAKE_PROVIDER_LATENCY_MS": "0",
        "APP_AUTH_ARGON2_TIME_COST": "1",
        "APP_AUTH_ARGON2_MEMORY_KIB": "1024",
        "APP_AUTH_ARGON2_PARALLELISM": "1",
        "APP_AUTH_LOGIN_FAILURES_PER_IP": "10000",
        "APP_EMAIL_BACKEND": "console",
        "APP_EVENTS_POLL_INTERVAL_SECONDS": "1.0",
    }
    ports = [free_port() for _ in range(5)]
    with Scaled(root, ports[0], ports[1:3], ports[3:5], env) as running:
        yield running
    shutil.rmtree(root, ignore_errors=True)


def _admin(stack: Stack) -> dict[str, str]:
    token = create_access_token(make_settings(stack), uuid.uuid4(), ["member", "admin"])
    return {"Authorization": f"Bearer {token}"}


async def _create(http: httpx.AsyncClient, url: str, admin: dict[str, str]) -> httpx.Response:
    name = f"scaled {uuid.uuid4().hex[:10]}"
    body = {"name": name, "description": "", "price_amount": 700, "currency": "EUR"}
    created = await http.post(url + "/v1/products", json=body, headers=admin)
    assert created.status_code == 201, created.text
    return created


async def test_a_write_through_one_instance_reads_back_through_another_while_replay_lags(
    scaled: Scaled, delayed_stack: Stack
) -> None:
    writer, reader = scaled.instance_urls
    admin = _admin(delayed_stack)
    stale, behind = [], 0
    # Two clients: cookies are kept per host, not per port, and the writer's consistency cookie
    # must not ride along on the reads that go without a token.
    async with httpx.AsyncClient(timeout=60) as writes, httpx.AsyncClient(timeout=60) as reads:
        for _ in range(ROUNDS):
            created = await _create(writes, writer, admin)
            path = f"/v1/products/{created.json()['id']}"
            # Without the token the other instance reads the replica, which has not replayed it.
            if (await reads.get(reader + path)).status_code == 404:
                behind += 1
            token = {"x-consistency-token": created.headers["x-consistency-token"]}
            read = await reads.get(reader + path, headers=token)
            if read.status_code != 200 or read.json()["name"] != created.json()["name"]:
                stale.append((path, read.status_code))
            reads.cookies.clear()
    assert stale == [], f"{len(stale)} stale reads of {ROUNDS}"
    # The test means something only if the replica really was behind the writes.
    assert behind > 0, "the replica replayed every write at once: the delay did not hold"


async def test_a_browser_through_haproxy_reads_its_writes_whichever_instance_answers(
    scaled: Scaled, delayed_stack: Stack
) -> None:
    admin = _admin(delayed_stack)
    stale = []
    # One client with a cookie jar, as a browser: round robin sends consecutive requests to
    # different instances, the consistency cookie travels with each.
    async with httpx.AsyncClient(base_url=scaled.url, timeout=60) as browser:
        for _ in range(ROUNDS):
            created = await _create(browser, "", admin)
            read = await browser.get(f"/v1/products/{created.json()['id']}")
            if read.status_code != 200:
                stale.append(read.status_code)
    assert stale == [], f"{len(stale)} stale reads of {ROUNDS} through HAProxy"


def _delivered(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "event_deliveries_total" and sample.labels["outcome"] == "delivered"
    )


async def _worker_deliveries(scaled: Scaled) -> list[float]:
    async with httpx.AsyncClient(timeout=30) as http:
        texts = [(await http.get(url)).text for url in scaled.worker_metrics_urls]
    return [_delivered(text) for text in texts]


async def _deliveries_since(stack: Stack, since: datetime) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.url(stack.primary_port, driver="postgresql"))
    try:
        return list(
            await conn.fetch(
                "SELECT d.status, d.attempts FROM platform_event_delivery d "
                "JOIN platform_outbox_event e ON e.id = d.event_id WHERE e.published_at >= $1",
                since,
            )
        )
    finally:
        await conn.close()


async def test_two_workers_deliver_each_event_once(scaled: Scaled, delayed_stack: Stack) -> None:
    conn = await asyncpg.connect(delayed_stack.url(delayed_stack.primary_port, driver="postgresql"))
    since = await conn.fetchval("SELECT now()")
    await conn.close()
    before = await _worker_deliveries(scaled)

    async def signup(http: httpx.AsyncClient) -> None:
        email = f"scaled-{uuid.uuid4().hex[:10]}@example.com"
        answer = await http.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
        assert answer.status_code == 202, answer.text

    async def all_done() -> list[asyncpg.Record] | None:
        rows = await _deliveries_since(delayed_stack, since)
        return rows if rows and all(r["status"] == "done" for r in rows) else None

    async with httpx.AsyncClient(base_url=scaled.url, timeout=60) as http:
        # Bursts until both workers have taken a share (they race for the same rows), 10 at most.
        for _ in range(10):
            await asyncio.gather(*(signup(http) for _ in range(8)))
            rows = await wait_for(all_done, timeout=120)
            shares = [a - b for a, b in zip(await _worker_deliveries(scaled), before, strict=True)]
            if all(share > 0 for share in shares):
                break
    assert all(share > 0 for share in shares), f"one worker did everything: {shares}"
    assert sum(shares) == len(rows), f"{sum(shares)} deliveries for {len(rows)} listener calls"
    assert [r for r in rows if r["attempts"] != 1] == []


def _scrape_config(scaled: Scaled) -> dict[str, object]:
    def targets(urls: list[str]) -> list[dict[str, list[str]]]:
        return [{"targets": [url.removeprefix("http://") for url in urls]}]

    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in sorted(RULES_DIR.glob("*.yml"))],
        "scrape_configs": [
            {"job_name": "app", "static_configs": targets(scaled.instance_urls)},
            {"job_name": "worker", "static_configs": targets(scaled.worker_metrics_urls)},
        ],
    }


def _requests(text: str, route: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels.get("route") == route
    )


async def test_prometheus_and_the_rules_add_up_every_instance(
    scaled: Scaled, tmp_path_factory: pytest.TempPathFactory
) -> None:
    route = "/v1/products"
    folder = tmp_path_factory.mktemp("prometheus-scaled")
    with prometheus(folder, _scrape_config(scaled)) as prom:

        async def both_up() -> bool:
            return len(prom.result('up{job="app"} == 1')) == len(scaled.instance_urls)

        await wait_for(both_up, timeout=120)
        async with httpx.AsyncClient(timeout=60) as http:
            for url, count in zip(scaled.instance_urls, (5, 9), strict=True):
                for _ in range(count):
                    assert (await http.get(url + route)).status_code == 200
            texts = [(await http.get(u + "/metrics")).text for u in scaled.instance_urls]
        per_instance = [_requests(text, route) for text in texts]
        assert all(value > 0 for value in per_instance)
        total = f'sum(http_requests_total{{job="app", route="{route}"}})'

        async def scraped_both() -> bool:
            return _values(prom, total) == [sum(per_instance)]

        await wait_for(scraped_both, timeout=120)
        # The rules that sum the API's series, evaluated as written at one instant, equal the
        # sum of the same expression kept apart per instance: nothing is taken from one
        # instance only, nothing counted twice.
        at = time.time()
        for rule in _summing_rules():
            across = _at(prom, rule["expr"], at)
            apart = _at(prom, rule["expr"].replace("sum by (", "sum by (instance, ", 1), at)
            assert sum(across.values()) > 0, f"{rule['record']} has no value"
            assert sum(across.values()) == pytest.approx(sum(apart.values())), rule["record"]
            instances = {key for key in apart if "instance" in key}
            assert instances, f"{rule['record']} kept apart has no instance label"
            assert len(apart) > len(across), f"{rule['record']}: one instance only"


def _values(prom: Prometheus, expr: str) -> list[float]:
    return [float(series["value"][1]) for series in prom.result(expr)]


def _at(prom: Prometheus, expr: str, at: float) -> dict[str, float]:
    response = httpx.get(prom.url + "/api/v1/query", params={"query": expr, "time": at}, timeout=30)
    assert response.status_code == 200, response.text
    return {
        str(sorted(series["metric"].items())): float(series["value"][1])
        for series in response.json()["data"]["result"]
    }


def _summing_rules() -> list[dict[str, str]]:
    chosen = {"module_route:http_requests:rate5m", "module_target:db_queries:rate5m"}
    found = [r for r in recording_rules() if r["record"] in chosen]
    assert len(found) == len(chosen), "a rule this test reads was renamed"
    return found
