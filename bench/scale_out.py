"""The load test's mixed journeys against 1 and 2 instances behind HAProxy, direct or via PgBouncer.

Interleaved rounds (``1 direct``, ``2 direct``, ``2 pooled``, then again), each on freshly started
processes over the local stack (PGSTACK_* and APP_* of the environment), each with the same
arrival rate: completed requests per second and p99 from the load test's own report, reads per
target from the instances' ``db_read_route_total``, and the primary's client connections from
``pg_stat_activity`` sampled every second. The load average is printed with every round.

    python -m bench.scale_out --rate 12 --duration 40 --rounds 2 --base-port 57760
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tools.pgstack import local_stack
from tools.pooler import Pooler
from tools.scaled import Scaled

REPO = Path(__file__).resolve().parents[1]
# Every client calls from 127.0.0.1: the per-address and per-account limits go out of the way.
_LIMITED = ("FAILURES_PER_IP", "FAILURES_PER_ACCOUNT", "FAILURES_PER_ACCOUNT_AND_IP")
LIMITS = dict.fromkeys([f"APP_AUTH_LOGIN_{n}" for n in _LIMITED], "1000000") | dict.fromkeys(
    ["APP_AUTH_RESET_REQUESTS_PER_ACCOUNT", "APP_AUTH_RESET_REQUESTS_PER_IP"], "1000000"
)


@dataclass
class Round:
    variant: str
    load_before: float
    load_after: float = 0.0
    throughput: float = 0.0
    p99_ms: float | None = None
    errors: int = 0
    reads: dict[str, float] = field(default_factory=dict)
    primary_connections: list[int] = field(default_factory=list)


def _primary_connections(stack: Any, stop: threading.Event, out: list[int]) -> None:
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    while not stop.wait(1.0):
        with contextlib.suppress(Exception):  # a missed sample is not worth the round
            out.append(int(stack.primary.psql(sql)))


def _reads(urls: list[str]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for url in urls:
        text = httpx.get(url + "/metrics", timeout=30).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "db_read_route_total":
                    target = sample.labels["target"]
                    totals[target] = totals.get(target, 0.0) + sample.value
    return totals


def _summary(out: Path) -> tuple[float, float | None, int]:
    """Answers per second over the run's window, p99 in ms and 5xx, from the load test's JSON."""
    path = out / "result.json"
    if not path.exists():
        return 0.0, None, 0
    result = json.loads(path.read_text())
    total, window = result["total"], result["run"]["window"]
    seconds = max(1e-9, window["last_answer"] - window["first_arrival"])
    return total["count"] / seconds, round(total["p99"] * 1000, 1), total["server_errors"]


def run_round(variant: str, args: argparse.Namespace, stack: Any) -> Round:
    instances = int(variant[0])
    pooled = variant.endswith("pooled")
    result = Round(variant, os.getloadavg()[0])
    env = {"APP_ENV": "development", "APP_LOG_LEVEL": "WARNING", **LIMITS}
    pooler = None
    if pooled:
        pooler = Pooler.for_stack(stack, Path(args.dir) / "pgbouncer", args.base_port - 20)
        pooler.start()
        env.update(pooler.app_env())
    else:
        env.update(
            APP_DATABASE_URL=stack.primary_url,
            APP_REPLICA_DATABASE_URL=stack.replica_url,
            APP_REPLICA_DATABASE_URLS=",".join(stack.replica_urls),
        )
    base = args.base_port
    scaled = Scaled(
        Path(args.dir) / variant.replace(" ", "-"),
        base - 10,
        [base + i for i in range(instances)],
        [args.metrics_port],
        env,
    )
    stop = threading.Event()
    try:
        scaled.start()
        before = _reads(scaled.instance_urls)
        sampler = threading.Thread(
            target=_primary_connections, args=(stack, stop, result.primary_connections)
        )
        sampler.start()
        out = Path(tempfile.mkdtemp(prefix="scale-out-"))
        command = [sys.executable, "-m", "loadtest", "--host", scaled.url, "--rate",
                   str(args.rate), "--duration", str(args.duration), "--prometheus", "none",
                   "--members", str(args.members), "--no-progress", "--out", str(out)]  # fmt: skip
        subprocess.run(command, cwd=REPO, capture_output=True, check=False)
        stop.set()
        sampler.join()
        after = _reads(scaled.instance_urls)
        result.reads = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        result.throughput, result.p99_ms, result.errors = _summary(out)
    finally:
        stop.set()
        scaled.stop()
        if pooler is not None:
            pooler.stop()
    result.load_after = os.getloadavg()[0]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--rate", type=float, default=12.0)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--members", type=int, default=30, help="seeded members signed in")
    parser.add_argument("--base-port", type=int, default=57760, help="instances from here")
    parser.add_argument("--metrics-port", type=int, default=57780, help="the worker's metrics")
    parser.add_argument("--variants", default="1 direct,2 direct,2 pooled")
    parser.add_argument("--dir", default=str(REPO / "var" / "scale-out"))
    args = parser.parse_args(argv)
    stack = local_stack()
    rounds = []
    for number in range(args.rounds):
        for variant in args.variants.split(","):
            r = run_round(variant.strip(), args, stack)
            rounds.append(r)
            conns = r.primary_connections
            print(
                f"round {number + 1} {r.variant:10s} load {r.load_before:5.2f}->{r.load_after:5.2f}"
                f"  {r.throughput:6.1f} req/s  p99 {r.p99_ms} ms  errors {r.errors}"
                f"  reads {json.dumps(r.reads)}"
                f"  primary conns median {sorted(conns)[len(conns) // 2] if conns else '-'}"
                f" max {max(conns, default='-')}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
