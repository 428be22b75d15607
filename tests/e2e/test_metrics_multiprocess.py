"""Two worker processes, one /metrics: every worker's requests add up in the scrape."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Server, start_server, stop_server
from tools.pgstack import Stack

POOL_SIZE = 3


def _scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(server.base_url + "/metrics", timeout=60).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _sample(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def _pids(folder: Path, pattern: str) -> set[int]:
    return {int(m.group(1)) for f in folder.iterdir() if (m := re.fullmatch(pattern, f.name))}


def _wait(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_two_workers_aggregate_and_dead_workers_are_dropped(
    migrated: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "prometheus-multiproc"
    folder.mkdir()
    # Left over from an earlier run: it would be merged in (or break the merge) if not wiped.
    (folder / "counter_999999.db").write_bytes(b"not a metrics file")
    (folder / "gauge_livesum_999998.db").write_bytes(b"")
    server = start_server(
        migrated,
        tmp_path / "server.log",
        "--workers",
        "2",
        extra_env={
            "PROMETHEUS_MULTIPROC_DIR": str(folder),
            "APP_DB_POOL_SIZE": str(POOL_SIZE),
            # Every /readyz here must say 200: a loaded machine must not turn one into a timeout.
            "APP_READINESS_TIMEOUT_SECONDS": "30",
        },
    )
    try:
        assert not (folder / "counter_999999.db").exists()

        sent = {"/readyz": 0, "/no/such/page": 0}

        def hit(path: str) -> int:
            # A new connection per request, so the kernel spreads them over both workers.
            return httpx.get(server.base_url + path, timeout=60).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            # Until both workers have served something, then a round more for good measure.
            rounds = 0
            while len(_pids(folder, r"counter_(\d+)\.db")) < 2 or rounds < 2:
                assert rounds < 50, "the second worker never served a request"
                paths = ["/readyz"] * 12 + ["/no/such/page"] * 4
                statuses = list(pool.map(hit, paths))
                assert statuses == [200] * 12 + [404] * 4
                sent["/readyz"] += 12
                sent["/no/such/page"] += 4
                rounds += 1

        scraped = _scrape(server)
        assert _sample(
            scraped, "http_requests_total", module="platform", route="/readyz", method="GET",
            status="200",
        ) == sent["/readyz"]  # fmt: skip
        assert _sample(
            scraped, "http_requests_total", module="platform", route="<unmatched>", method="GET",
            status="404",
        ) == sent["/no/such/page"]  # fmt: skip
        assert _sample(
            scraped, "http_request_duration_seconds_count", module="platform", route="/readyz",
            method="GET",
        ) == sent["/readyz"]  # fmt: skip
        # livesum: the scrape itself is the one request in progress, summed over both workers.
        assert (
            _sample(scraped, "http_requests_in_progress", module="platform", route="/metrics") == 1
        )
        assert (
            _sample(scraped, "http_requests_in_progress", module="platform", route="/readyz") == 0
        )
        # Each worker's pool reports once it has checked out a connection (its replica health
        # check does within one interval, whichever worker the requests above reached).
        _wait(lambda: _sample(_scrape(server), "db_pool_size", target="primary") == 2 * POOL_SIZE)

        # A worker dies hard: uvicorn replaces it; its live gauges go, its counts stay.
        live = _pids(folder, r"gauge_livesum_(\d+)\.db")
        assert len(live) == 2
        victim = sorted(live)[0]
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: victim not in _pids(folder, r"gauge_livesum_(\d+)\.db"))
        _wait(lambda: len(_pids(folder, r"gauge_livesum_(\d+)\.db")) == 2)  # its replacement

        _wait(lambda: _sample(_scrape(server), "db_pool_size", target="primary") == 2 * POOL_SIZE)
        scraped = _scrape(server)
        assert _sample(
            scraped, "http_requests_total", module="platform", route="/readyz", method="GET",
            status="200",
        ) == sent["/readyz"]  # fmt: skip
    finally:
        assert stop_server(server) == 0, server.output()
