"""Does a flood of slow analytics reports slow checkout? Its p99 idle vs under the flood.

    python -m bench.bulkhead [--base-url URL] [--requests N] [--flood N] [--bulkhead N] ...
    make bench-bulkhead            (local stack; `make seed PRESET=large RESET=1` first, so that
                                    one report takes a second or more)

Without --base-url it starts `python -m app serve` itself on a free port against the databases
in APP_DATABASE_URL / APP_REPLICA_DATABASE_URL (the local stack by default), with the report
bulkhead size and statement timeout given here. It creates --products products (as an admin),
then, side by side in one run:

1. idle:  --requests checkouts (--target-concurrency at a time), nothing else running;
2. flood: the same, while --flood clients request the funnel report over --report-days days,
          by the hour, as fast as they are answered (200, 503 from the bulkhead, 504 timeouts).

A checkout is ``POST /v1/checkout`` with one to three of those products, the fake provider's
``tok_success`` token and a fresh ``Idempotency-Key``, as a member whose access token is minted
with the app's settings (``--target ingest`` measures a 20-event analytics batch instead).
Prints p50/p95/p99 per phase and the p99 ratio (the target is at most 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.platform.config import get_settings
from app.platform.security import create_access_token

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ingest_body() -> str:
    search_id = str(uuid.uuid4())
    events: list[dict[str, Any]] = [{"type": "page_view", "path": f"/p/{i}"} for i in range(17)]
    events.append({"type": "search", "search_id": search_id, "query": "lamp", "result_count": 3})
    events.append(
        {"type": "search_click", "search_id": search_id, "product_id": str(uuid.uuid4()),
         "position": 1}
    )  # fmt: skip
    events.append({"type": "checkout_started"})
    return json.dumps({"anonymous_id": "bench", "events": events})


@dataclass
class Target:
    """What one measured request is: a checkout (the default) or an analytics batch."""

    kind: str
    product_ids: list[str] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))  # noqa: S311

    @property
    def path(self) -> str:
        return "/v1/checkout" if self.kind == "checkout" else "/v1/analytics/events"

    @property
    def expected(self) -> int:
        return 201 if self.kind == "checkout" else 202

    def request(self) -> tuple[str, dict[str, str]]:
        if self.kind != "checkout":
            return _ingest_body(), {}
        chosen = self.rng.sample(self.product_ids, self.rng.choice((1, 1, 2, 3)))
        body = {
            "items": [{"product_id": p, "quantity": self.rng.choice((1, 1, 2))} for p in chosen],
            "payment_token": "tok_success",
        }
        return json.dumps(body), {"Idempotency-Key": str(uuid.uuid4())}


async def _create_products(reports: httpx.AsyncClient, count: int) -> list[str]:
    """Products to buy, created through the API as an admin (the checkout reads the catalog)."""
    ids = []
    for i in range(count):
        response = await reports.post(
            "/v1/products",
            json={"name": f"Bench item {i}", "price_amount": 1000 + 100 * i, "currency": "EUR"},
        )
        if response.status_code != 201:
            raise SystemExit(f"creating a product failed: {response.status_code} {response.text}")
        ids.append(response.json()["id"])
    return ids


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _target_load(
    client: httpx.AsyncClient, target: Target, requests: int, concurrency: int
) -> Phase:
    phase = Phase()
    queue: asyncio.Queue[None] = asyncio.Queue()
    for _ in range(requests):
        queue.put_nowait(None)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            body, headers = target.request()
            started = time.perf_counter()
            response = await client.post(target.path, content=body, headers=headers)
            phase.latencies.append(time.perf_counter() - started)
            phase.statuses[response.status_code] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return phase


async def _flood(
    client: httpx.AsyncClient,
    params: dict[str, str],
    stop: asyncio.Event,
    outcomes: Counter[int],
    honor: bool,
) -> None:
    while not stop.is_set():
        try:
            response = await client.get("/v1/analytics/reports/funnel", params=params)
            outcomes[response.status_code] += 1
            if response.status_code == 503:
                # Dashboards and report jobs back off as told; --no-retry-after floods anyway.
                wait = float(response.headers.get("retry-after", "1")) if honor else 0.005
                await asyncio.sleep(wait)
        except httpx.HTTPError:
            outcomes[0] += 1


def _start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "APP_ANALYTICS_REPORT_MAX_CONCURRENCY": str(args.bulkhead),
        "APP_ANALYTICS_REPORT_STATEMENT_TIMEOUT_MS": str(args.report_timeout_ms),
        "APP_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)], cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not come up within 30 s")


async def _run(args: argparse.Namespace, base: str) -> None:
    settings = get_settings()
    member = create_access_token(settings, uuid.uuid4(), ["member"])
    admin = create_access_token(settings, uuid.uuid4(), ["member", "admin"])
    headers = {"Authorization": f"Bearer {member}", "Content-Type": "application/json"}
    target = Target(args.target)

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    params = {
        "from": (end - timedelta(days=args.report_days)).isoformat(),
        "to": end.isoformat(),
        "interval": "hour",
    }
    limits = httpx.Limits(max_connections=args.flood + args.target_concurrency + 4)
    async with (
        httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=headers) as client,
        httpx.AsyncClient(
            base_url=base, timeout=60, limits=limits,
            headers={"Authorization": f"Bearer {admin}"},
        ) as reports,
    ):  # fmt: skip
        if target.kind == "checkout":
            target.product_ids = await _create_products(reports, args.products)
        probe = await reports.get("/v1/analytics/reports/funnel", params=params)
        alone = probe.elapsed.total_seconds()
        print(f"one report alone: HTTP {probe.status_code} in {alone:.2f} s")
        if alone < 0.3:
            print("  (reports are fast on this data, so the flood is light: seed the large preset,")
            print("   make seed PRESET=large RESET=1, or point --report-days at the seeded period)")
        await _target_load(client, target, max(20, args.requests // 10), args.target_concurrency)

        idle = await _target_load(client, target, args.requests, args.target_concurrency)

        stop, outcomes = asyncio.Event(), Counter[int]()
        flood = [
            asyncio.create_task(_flood(reports, params, stop, outcomes, args.retry_after))
            for _ in range(args.flood)
        ]
        await asyncio.sleep(1.0)  # let the flood fill the bulkhead first
        busy = await _target_load(client, target, args.requests, args.target_concurrency)
        stop.set()
        await asyncio.gather(*flood)

    def line(name: str, p: Phase) -> str:
        return (
            f"{name:<6} n={len(p.latencies):<5} p50={p.pct(0.5):7.1f} ms  p95={p.pct(0.95):7.1f} ms"
            f"  p99={p.pct(0.99):7.1f} ms  mean={statistics.mean(p.latencies) * 1000:6.1f} ms"
            f"  statuses={dict(p.statuses)}"
        )

    print(f"target: POST {target.path} ({target.kind}), {args.target_concurrency} at a time")
    print(line("idle", idle))
    print(line("flood", busy))
    print(
        f"flood: {args.flood} report clients, bulkhead {args.bulkhead}, timeout "
        f"{args.report_timeout_ms} ms, {args.report_days} days hourly; outcomes {dict(outcomes)}"
    )
    for name, phase in (("idle", idle), ("flood", busy)):
        failed = sum(n for status, n in phase.statuses.items() if status != target.expected)
        if failed:
            print(f"WARNING: {failed} {name} requests were not {target.expected}")
    ratio = busy.pct(0.99) / idle.pct(0.99)
    verdict = "OK" if ratio <= 1.5 else "ABOVE TARGET"
    print(f"p99 flood / idle = {ratio:.2f}x (target <= 1.5x): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server; default: start one")
    parser.add_argument("--requests", type=int, default=600, help="target requests per phase")
    parser.add_argument("--target-concurrency", type=int, default=4)
    parser.add_argument(
        "--target", choices=["checkout", "ingest"], default="checkout", help="what is measured"
    )
    parser.add_argument("--products", type=int, default=20, help="products to check out")
    parser.add_argument("--flood", type=int, default=16, help="concurrent report clients")
    parser.add_argument("--report-days", type=int, default=30)
    parser.add_argument(
        "--retry-after",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="report clients wait Retry-After on a 503 (--no-retry-after: hammer)",
    )
    parser.add_argument("--bulkhead", type=int, default=1, help="report slots (spawned server)")
    parser.add_argument("--report-timeout-ms", type=int, default=5000)
    args = parser.parse_args()
    proc = None
    base = args.base_url
    if base is None:
        proc, base = _start_server(args)
    try:
        asyncio.run(_run(args, base))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
