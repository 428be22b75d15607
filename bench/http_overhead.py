"""What the HTTP instrumentation costs: the same app, side by side, with it off, on, or replaced.

Variants, each its own uvicorn process (one worker, pinned to one CPU when possible), every one
the same app (``create_app``) and the same platform middleware, with only these switched:

- ``off``           ``APP_HTTP_METRICS=false`` and no access line (the baseline)
- ``ours``          the app as shipped, access log off (metrics alone)
- ``ours+log``      the app as shipped, with the access log line per request (to /dev/null)
- ``instrumentator`` the baseline plus prometheus-fastapi-instrumentator's defaults instead

The load is bench/loadgen.py on loopback (pinned to the other CPU) against ``GET /healthz``: a
fixed number of requests over keep-alive connections per run (wrk counts time, not requests).
The variants take turns within each round and the rounds repeat, with fresh server processes
each round (one process's memory layout moves its figures by a few microseconds a request;
fresh ones average that out). The medians and the ratios to ``off`` are printed, with the
server's CPU time per request (read from /proc: what a request costs however long it waited
for a CPU, the steadier figure on a busy machine). Ratios measured in one run are what count on
a shared, noisy machine; absolute figures are not comparable between machines.

``--before DIR`` also runs ``off``, ``ours`` and ``ours+log`` from another checkout of the project
(for a before/after in the same run, e.g. ``git archive main | tar -x -C DIR``).

    python -m bench.http_overhead --requests 5000 --rounds 21
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("off", "ours", "ours+log", "instrumentator")
BEFORE = "before:"
FACTORIES = {
    "off": "make_off",
    "ours": "make_ours",
    "ours+log": "make_ours_logged",
    "instrumentator": "make_instrumentator",
}


# --- the apps under test (uvicorn --factory targets) ---------------------------------------------


def _app(*, metrics: bool, access_log: bool) -> FastAPI:
    from app.main import create_app
    from app.platform.config import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="development",
        log_level="WARNING",
        log_json=True,
        http_metrics=metrics,
        access_log=access_log,
        replica_database_url=None,
        # No database here: a dispatcher would only retry its connection in the background.
        events_dispatcher_enabled=False,
    )
    return create_app(settings)


def make_off() -> FastAPI:
    return _app(metrics=False, access_log=False)


def make_ours() -> FastAPI:
    return _app(metrics=True, access_log=False)


def make_ours_logged() -> FastAPI:
    app = _app(metrics=True, access_log=True)
    # The line is rendered and written as in production; only the destination is /dev/null.
    import logging

    logging.getLogger("app.access").setLevel(logging.INFO)
    return app


def make_instrumentator() -> FastAPI:
    from prometheus_fastapi_instrumentator import Instrumentator

    app = make_off()
    # Its own registry: its family names collide with ours in the default one.
    Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


# --- running and measuring -----------------------------------------------------------------------


@dataclass
class Figures:
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process so far (Linux): what it cost, however long it waited for a CPU.

    From the scheduler's per-thread nanosecond counters (``schedstat``) where available: the
    clock-tick counters of ``stat`` are 10 ms coarse, a few percent of a short round.
    """
    try:
        return (
            sum(
                int((task / "schedstat").read_text().split()[0])
                for task in Path(f"/proc/{pid}/task").iterdir()
            )
            / 1e9
        )
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def _spawn(
    variant: str, before: Path | None, prefix: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """One variant's server, started under ``prefix`` (default: pinned to CPU 0)."""
    port = _free_port()
    # "before:<variant>" runs the variant from another checkout of the project (--before).
    tree = before if variant.startswith(BEFORE) and before is not None else ROOT
    factory = FACTORIES[variant.removeprefix(BEFORE)]
    # One hash seed for every server: dict and set layouts then differ only by the code run.
    env = {**os.environ, "APP_LOG_LEVEL": "WARNING", "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [
        *(_pin(0) if prefix is None else prefix), sys.executable, "-m", "uvicorn",
        f"bench.http_overhead:{factory}", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
        "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # where ours+log writes its lines
    )
    return process, f"http://127.0.0.1:{port}"


def _start_all(
    variants: tuple[str, ...],
    before: Path | None,
    prefix: list[str] | None = None,
    timeout: float = 90,
) -> dict[str, tuple[subprocess.Popen[bytes], str]]:
    """A fresh server per variant, started side by side, each answering before this returns."""
    servers = {variant: _spawn(variant, before, prefix) for variant in variants}
    deadline = time.monotonic() + timeout
    for variant, (process, url) in servers.items():
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    _stop_all(servers)
                    raise SystemExit(f"the {variant} server did not start") from None
                time.sleep(0.1)
    return servers


def _stop_all(servers: dict[str, tuple[subprocess.Popen[bytes], str]]) -> None:
    for process, _ in servers.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process, _ in servers.values():
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _load(url: str, requests: int, connections: int) -> tuple[float, float, float]:
    out = subprocess.run(
        [
            *_pin(1),
            sys.executable,
            "-m",
            "bench.loadgen",
            url + "/healthz",
            "--requests",
            str(requests),
            "--connections",
            str(connections),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = json.loads(out)
    return figures["rps"], figures["p50_ms"], figures["p99_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="requests per run")
    parser.add_argument("--rounds", type=int, default=9, help="rounds (each runs every variant)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated subset of {', '.join(VARIANTS)} (off is always measured)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout of the project (e.g. `git archive main`): its off, ours and "
        "ours+log run too, as before:<variant>, for a before/after in one run",
    )
    parser.add_argument(
        "--restart-every",
        type=int,
        default=1,
        help="start fresh server processes every N rounds (0: one set for the whole run)",
    )
    args = parser.parse_args()
    chosen: tuple[str, ...] = (
        "off",
        *(v for v in args.variants.split(",") if v in VARIANTS and v != "off"),
    )
    if args.before is not None:
        chosen += tuple(BEFORE + v for v in ("off", "ours", "ours+log") if v in chosen)
    figures = {variant: Figures() for variant in chosen}
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for round_no in range(args.rounds):
            if not servers or (args.restart_every and round_no % args.restart_every == 0):
                # New processes: each has its own memory layout, which moves a process's
                # figures by a few microseconds a request; fresh ones average that out.
                _stop_all(servers)
                servers = _start_all(chosen, args.before)
                for _, url in servers.values():  # warm-up: first-request paths, caches, clock
                    _load(url, max(1000, args.requests // 10), args.connections)
            # Rotate the order so no variant always runs right after the same neighbour.
            shift = round_no % len(chosen)
            for variant in chosen[shift:] + chosen[:shift]:
                process, url = servers[variant]
                cpu_before = _cpu_seconds(process.pid)
                rps, p50, p99 = _load(url, args.requests, args.connections)
                cpu_us = (_cpu_seconds(process.pid) - cpu_before) / args.requests * 1e6
                figures[variant].cpu_us.append(cpu_us)
                figures[variant].rps.append(rps)
                figures[variant].p50_ms.append(p50)
                figures[variant].p99_ms.append(p99)
                print(
                    f"round {round_no + 1} {variant:15} {rps:9.0f} req/s  "
                    f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  server CPU {cpu_us:6.1f} us/req",
                    flush=True,
                )
    finally:
        _stop_all(servers)

    base = statistics.median(figures["off"].rps)
    print(
        f"\nGET /healthz, {args.requests} requests x {args.rounds} rounds, "
        f"{args.connections} connections, medians:"
    )
    print(
        f"{'variant':15} {'req/s':>9} {'vs off':>8} {'paired':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us/req':>11} {'vs off':>8} {'paired':>8} {'+us/req':>8}"
    )
    base_cpu = statistics.median(figures["off"].cpu_us)
    paired: dict[str, float] = {}
    paired_cpu: dict[str, float] = {}
    for variant in chosen:
        f = figures[variant]
        rps = statistics.median(f.rps)
        # Each round's ratio to the baseline measured moments apart: robust to load that drifts
        # over the run (other processes on a shared machine).
        paired[variant] = statistics.median(
            v / b for v, b in zip(f.rps, figures["off"].rps, strict=True)
        )
        paired_cpu[variant] = statistics.median(
            v / b for v, b in zip(f.cpu_us, figures["off"].cpu_us, strict=True)
        )
        added = statistics.median(
            v - b for v, b in zip(f.cpu_us, figures["off"].cpu_us, strict=True)
        )
        print(
            f"{variant:15} {rps:9.0f} {rps / base:8.3f} {paired[variant]:8.3f} "
            f"{statistics.median(f.p50_ms):8.2f} {statistics.median(f.p99_ms):8.2f} "
            f"{statistics.median(f.cpu_us):11.1f} {statistics.median(f.cpu_us) / base_cpu:8.3f} "
            f"{paired_cpu[variant]:8.3f} {added:+8.1f}"
        )
    if "ours" in figures:
        ours = statistics.median(figures["ours"].rps)
        print(
            f"\nours costs {100 * (1 - ours / base):.1f}% of throughput by medians, "
            f"{100 * (1 - paired['ours']):.1f}% by paired rounds (target <= 3%); server CPU per "
            f"request +{100 * (statistics.median(figures['ours'].cpu_us) / base_cpu - 1):.1f}% "
            f"by medians, +{100 * (paired_cpu['ours'] - 1):.1f}% paired"
        )
        for variant in (v for v in chosen if v.startswith(BEFORE)):
            now = variant.removeprefix(BEFORE)
            speedup = statistics.median(figures[now].rps) / statistics.median(figures[variant].rps)
            print(
                f"{now} after / before: throughput x{speedup:.3f}, added CPU per request "
                f"{100 * (paired_cpu[now] - 1):+.1f}% vs {100 * (paired_cpu[variant] - 1):+.1f}% "
                "(paired, of off)"
            )
        if "instrumentator" in figures:
            other = statistics.median(figures["instrumentator"].rps)
            print(f"ours / instrumentator = {ours / other:.3f} (target >= 1)")


if __name__ == "__main__":
    main()
