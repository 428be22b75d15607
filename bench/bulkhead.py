"""Does a flood of slow analytics reports slow checkout? Before and after the bulkhead, one run.

    python -m bench.bulkhead [--rounds N] [--requests N] [--flood N] [--bulkhead N] ...
    make bench-bulkhead ARGS="..."  (local stack; `make seed PRESET=large RESET=1` first, so that
                                     one report takes a second or more)

It starts two servers (`python -m app serve`) on free ports against the databases in
APP_DATABASE_URL / APP_REPLICA_DATABASE_URL (the local stack by default):

- before: APP_ANALYTICS_REPORT_ISOLATION=none, the reports on the primary, in the pool checkout
  uses, without bulkhead or report statement timeout;
- after:  as shipped (isolation "bulkhead": the replica, --bulkhead slots, --report-timeout-ms).

It creates --products products (as an admin), then runs --rounds rounds; each round measures,
for both servers (in alternating order), --requests checkouts (--target-concurrency at a time)
idle, then the same while --flood clients request the funnel report over --report-days days,
by the hour, as fast as they are answered (honouring Retry-After unless --no-retry-after). The
flood runs in its own process, so its work never delays the measuring client. A checkout is
``POST /v1/checkout`` with one to three of those products, the fake provider's ``tok_success``
and a fresh ``Idempotency-Key``, as a member whose token is minted with the app's settings.

Prints per round and pooled over the rounds: checkout p50/p99 idle and under the flood, the p99
ratio (goal: after <= 1.5x, before >= 10x), the load average, the reports' outcomes, and from the
after server's /metrics how long its refused reports took inside the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.platform.config import get_settings
from app.platform.security import create_access_token
from bench.report_flood import FUNNEL, Flood

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("before", "after")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load() -> float:
    return os.getloadavg()[0]


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    load: list[float] = field(default_factory=list)  # 1-minute load average at start and end

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def merge(self, other: Phase) -> None:
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.load += other.load


class Checkouts:
    """Checkout requests: one to three of the products, ``tok_success``, a fresh key each."""

    def __init__(self, product_ids: list[str]) -> None:
        self.product_ids = product_ids
        self.rng = random.Random(7)  # noqa: S311 - load shapes, not secrets

    def body(self) -> str:
        chosen = self.rng.sample(self.product_ids, self.rng.choice((1, 1, 2, 3)))
        items = [{"product_id": p, "quantity": self.rng.choice((1, 1, 2))} for p in chosen]
        return json.dumps({"items": items, "payment_token": "tok_success"})

    async def run(self, client: httpx.AsyncClient, requests: int, concurrency: int) -> Phase:
        phase = Phase(load=[_load()])
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                headers = {"Idempotency-Key": str(uuid.uuid4())}
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/checkout", content=self.body(), headers=headers
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                phase.latencies.append(time.perf_counter() - started)
                phase.statuses[status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        phase.load.append(_load())
        return phase


# -- servers -------------------------------------------------------------------------------


def _start_server(name: str, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "APP_LOG_LEVEL": "WARNING"}
    if name == "before":
        env["APP_ANALYTICS_REPORT_ISOLATION"] = "none"
    else:
        env["APP_ANALYTICS_REPORT_ISOLATION"] = "bulkhead"
        env["APP_ANALYTICS_REPORT_MAX_CONCURRENCY"] = str(args.bulkhead)
        env["APP_ANALYTICS_REPORT_STATEMENT_TIMEOUT_MS"] = str(args.report_timeout_ms)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)], cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"the {name} server did not come up within 60 s")


async def _refused_durations(client: httpx.AsyncClient) -> tuple[float, dict[float, float]]:
    """The funnel route's 503 count and its cumulative duration buckets, from /metrics.

    The buckets hold the answered reports too; those take far longer than the bounds read
    here (one alone takes a second or more on the seeded data), so the low buckets are the
    refusals'.
    """
    text = (await client.get("/metrics")).text
    refused, buckets = 0.0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("route") != FUNNEL:
                continue
            if sample.name == "http_requests_total" and sample.labels.get("status") == "503":
                refused += sample.value
            elif sample.name == "http_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                if bound <= 0.1:
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return refused, buckets


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _flood_cpu(
    pid: int, base: str, token: str, params: dict[str, str], clients: int, seconds: float
) -> tuple[float, dict[str, int]]:
    """The server's CPU seconds during ``seconds`` of a flood that ignores Retry-After."""
    flood = Flood(base, token, params, clients, honor=False)
    started = _cpu_seconds(pid)
    await asyncio.sleep(seconds)
    outcomes = await asyncio.to_thread(flood.stop)
    return _cpu_seconds(pid) - started, outcomes


async def refusal_cpu(
    pid: int, base: str, token: str, params: dict[str, str], clients: int, seconds: float
) -> str:
    """CPU per refused report: a hammering flood against one client's, reports netted out.

    One client keeps the bulkhead busy with back-to-back reports (its CPU per answered report
    is the baseline); then ``clients`` hammer, and what the server spent beyond their answered
    reports' share is the refusals' cost.
    """
    base_cpu, base_out = await _flood_cpu(pid, base, token, params, 1, seconds)
    cpu, out = await _flood_cpu(pid, base, token, params, clients, seconds)
    answered, refused = base_out.get("200", 0), out.get("503", 0)
    if not answered or not refused:
        return f"refusal CPU not measured (baseline {base_out}, hammer {out})"
    per_report = base_cpu / answered
    per_refusal = (cpu - out.get("200", 0) * per_report) / refused
    return (
        f"after: CPU {per_refusal * 1000:.2f} ms a refused report ({refused} refused, "
        f"{out.get('200', 0)} answered in {seconds:g} s, {clients} clients ignoring "
        f"Retry-After; {per_report * 1000:.1f} ms an answered report), load {_load():.1f}"
    )


async def _create_products(client: httpx.AsyncClient, count: int) -> list[str]:
    ids = []
    for i in range(count):
        response = await client.post(
            "/v1/products",
            json={"name": f"Bench item {i}", "price_amount": 1000 + 100 * i, "currency": "EUR"},
        )
        if response.status_code != 201:
            raise SystemExit(f"creating a product failed: {response.status_code} {response.text}")
        ids.append(response.json()["id"])
    return ids


def _line(name: str, p: Phase) -> str:
    load = f"{min(p.load):.1f}-{max(p.load):.1f}"
    return (
        f"    {name:<6} n={len(p.latencies):<5} p50={p.pct(0.5):8.1f} ms  "
        f"p99={p.pct(0.99):8.1f} ms  load {load:<9} statuses={dict(p.statuses)}"
    )


def _ratio_line(config: str, idle: Phase, flood: Phase) -> str:
    ratio = flood.pct(0.99) / idle.pct(0.99)
    goal, met = ("<= 1.5x", ratio <= 1.5) if config == "after" else (">= 10x", ratio >= 10)
    verdict = "met" if met else "NOT MET"
    return (
        f"  {config:<6} p99 flood / idle = {ratio:6.2f}x  (goal {goal}: {verdict}); "
        f"p50 {flood.pct(0.5) / idle.pct(0.5):.2f}x"
    )


async def _run(args: argparse.Namespace, bases: dict[str, str], after_pid: int) -> None:
    settings = get_settings()
    # Valid for the whole run: on a busy machine it outlasts the usual 15-minute token.
    ttl = timedelta(hours=6)
    member = create_access_token(settings, uuid.uuid4(), ["member"], ttl=ttl)
    admin = create_access_token(settings, uuid.uuid4(), ["member", "admin"], ttl=ttl)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    params = {
        "from": (end - timedelta(days=args.report_days)).isoformat(),
        "to": end.isoformat(),
        "interval": "hour",
    }
    headers = {"Authorization": f"Bearer {member}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=args.target_concurrency + 2)
    clients = {
        name: httpx.AsyncClient(base_url=base, timeout=120, limits=limits, headers=headers)
        for name, base in bases.items()
    }
    admins = {
        name: httpx.AsyncClient(
            base_url=base, timeout=120, headers={"Authorization": f"Bearer {admin}"}
        )
        for name, base in bases.items()
    }
    try:
        checkouts = Checkouts(await _create_products(admins["after"], args.products))
        for name in bases:
            probe = await admins[name].get(FUNNEL, params=params)
            print(
                f"{name}: one report alone: HTTP {probe.status_code} in "
                f"{probe.elapsed.total_seconds():.2f} s"
            )
            await checkouts.run(
                clients[name], max(20, args.requests // 10), args.target_concurrency
            )
        if probe.elapsed.total_seconds() < 0.3:
            print("  (reports are fast on this data, so the flood is light: seed the large preset,")
            print("   make seed PRESET=large RESET=1, or point --report-days at the seeded period)")
        pooled = {(c, p): Phase() for c in CONFIGS for p in ("idle", "flood")}
        reports: dict[str, Counter[str]] = {c: Counter() for c in CONFIGS}
        refused_before = await _refused_durations(admins["after"])
        for round_no in range(args.rounds):
            order = CONFIGS if round_no % 2 == 0 else CONFIGS[::-1]
            print(f"round {round_no + 1} of {args.rounds}")
            for config in order:
                client = clients[config]
                idle = await checkouts.run(client, args.requests, args.target_concurrency)
                flood = Flood(bases[config], admin, params, args.flood, args.retry_after)
                await asyncio.sleep(args.settle)  # let the flood fill the bulkhead (or the pool)
                busy = await checkouts.run(client, args.requests, args.target_concurrency)
                outcomes = await asyncio.to_thread(flood.stop)
                await asyncio.sleep(args.settle)  # the outbox's deliveries of the flood phase
                reports[config].update(outcomes)
                print(_line("idle", idle))
                print(_line("flood", busy) + f"  reports {outcomes}")
                print(_ratio_line(config, idle, busy))
                pooled[(config, "idle")].merge(idle)
                pooled[(config, "flood")].merge(busy)
        refused_after = await _refused_durations(admins["after"])
        cpu_line = (
            await refusal_cpu(
                after_pid, bases["after"], admin, params, args.flood, args.cpu_seconds
            )
            if args.cpu_seconds > 0
            else None
        )
    finally:
        for c in (*clients.values(), *admins.values()):
            await c.aclose()

    print(
        f"\npooled over {args.rounds} rounds ({args.requests} checkouts a phase, "
        f"{args.target_concurrency} at a time; flood {args.flood} clients, "
        f"{'honouring' if args.retry_after else 'ignoring'} Retry-After, {args.report_days} "
        f"days hourly; after: bulkhead {args.bulkhead}, timeout {args.report_timeout_ms} ms):"
    )
    for config in CONFIGS:
        print(f"  {config}: reports {dict(reports[config])}")
        print(_line("idle", pooled[(config, "idle")]))
        print(_line("flood", pooled[(config, "flood")]))
    for config in CONFIGS:
        print(_ratio_line(config, pooled[(config, "idle")], pooled[(config, "flood")]))
    refused = refused_after[0] - refused_before[0]
    if refused:
        shares = ", ".join(
            f"<= {bound * 1000:g} ms {100 * (n - refused_before[1].get(bound, 0)) / refused:.1f}%"
            for bound, n in sorted(refused_after[1].items())
        )
        print(f"  after: {refused:.0f} refused reports, server time {shares}")
    if cpu_line:
        print("  " + cpu_line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="before/after rounds, interleaved")
    parser.add_argument("--requests", type=int, default=200, help="checkouts per phase")
    parser.add_argument("--target-concurrency", type=int, default=4)
    parser.add_argument("--products", type=int, default=20, help="products to check out")
    parser.add_argument("--flood", type=int, default=16, help="concurrent report clients")
    parser.add_argument("--report-days", type=int, default=30)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds of flood before timing")
    parser.add_argument(
        "--retry-after",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="report clients wait Retry-After on a 503 (--no-retry-after: hammer)",
    )
    parser.add_argument("--bulkhead", type=int, default=1, help="report slots of 'after'")
    parser.add_argument("--report-timeout-ms", type=int, default=5000, help="'after' only")
    parser.add_argument(
        "--cpu-seconds", type=float, default=5.0, help="refusal CPU probe length (0: skip)"
    )
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    bases: dict[str, str] = {}
    try:
        for name in CONFIGS:
            proc, bases[name] = _start_server(name, args)
            procs.append(proc)
        asyncio.run(_run(args, bases, procs[CONFIGS.index("after")].pid))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
