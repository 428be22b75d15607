"""What the HTTP instrumentation costs, in CPU instructions, a figure machine load does not move.

``make bench-http`` measures throughput, what the target is set in; on a shared 2-core machine
its per-round figures wander by a percent or two. This counts instead, with valgrind's callgrind,
the instructions a uvicorn worker executes per request for the same variants (``off``, ``ours``,
``instrumentator``; see ``bench/http_overhead.py``): after a warm-up the counters are zeroed, a
fixed number of ``GET /healthz`` sent one at a time (so that the event loop takes the same path
for every request), and the counters dumped; uvicorn's clock-driven work, measured idle, is
taken out. Two runs of the same checkout agree to ~100 instructions a request (~0.02%) however
busy the machine is. The same code at another path can count up to ~1,300 apart in ours - off
(where objects land in memory changes, it seems, the probes of address-hashed lookups), so a
before/after (``--before``) resolves differences above that, ~0.25% of a request.

What it does not see: cache misses and branch mispredictions, which make a request's extra
instructions cost more time in a busy worker than in a tight loop. The throughput ratio of
``make bench-http`` stays the figure of record; this one says how much work is added.

Slow: each server runs ~50 times slower under valgrind and takes a minute or two to start (the
variants run two at a time). Needs valgrind (Debian: ``apt-get install valgrind``).

    python -m bench.http_instructions --requests 2000 --before /tmp/before
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.http_overhead import BEFORE, VARIANTS, _load, _start_all, _stop_all

_SUMMARY = re.compile(r"^summary:\s+(\d+)", re.MULTILINE)


def _counted(pid: int, dump: Path, number: int) -> int:
    """Dump ``pid``'s counters (its dump file ``number``) and return the instructions in it."""
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    path = dump.with_name(f"{dump.name}.{number}")
    for _ in range(600):  # written by the server's own thread
        text = path.read_text() if path.exists() else ""
        found = _SUMMARY.search(text)
        if found is not None and "\ntotals:" in text:
            return int(found.group(1))
        time.sleep(0.1)
    raise SystemExit(f"no callgrind dump {path}")


def count(variant: str, requests: int, connections: int, before: Path | None, idle: float) -> float:
    """Instructions per request of one variant's server (a fresh process under callgrind).

    uvicorn also does work by the clock (a tick every 0.1 s, the date header every second),
    which under valgrind's slowness would weigh per request in proportion to how long the
    requests took, so to how busy the machine was. It is measured idle for ``idle`` seconds
    after the requests and its rate times their duration subtracted.
    """
    with tempfile.TemporaryDirectory(prefix="callgrind-") as out:
        dump = Path(out) / "callgrind.out"
        prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}"]
        servers = _start_all((variant,), before, prefix, timeout=900)
        try:
            process, url = servers[variant]
            _load(url, max(200, requests // 4), connections)  # first-request paths, caches
            zero = ["callgrind_control", "--zero", str(process.pid)]
            subprocess.run(zero, check=True, capture_output=True)
            started = time.monotonic()
            _load(url, requests, connections)
            elapsed = time.monotonic() - started
            busy = _counted(process.pid, dump, 1)
            subprocess.run(zero, check=True, capture_output=True)
            started = time.monotonic()
            time.sleep(idle)
            idle_rate = _counted(process.pid, dump, 2) / (time.monotonic() - started)
            return (busy - idle_rate * elapsed) / requests
        finally:
            _stop_all(servers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests counted per variant")
    parser.add_argument("--connections", type=int, default=1, help="concurrent connections")
    parser.add_argument(
        "--variants",
        default="off,ours,instrumentator",
        help=f"comma-separated subset of {', '.join(VARIANTS)} (off is always counted)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="variants counted at once")
    parser.add_argument(
        "--idle", type=float, default=10, help="seconds the clock-driven work is measured idle"
    )
    parser.add_argument(
        "--before", type=Path, help="another checkout: its off and ours are counted too"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind (Debian, Ubuntu)")
    chosen: tuple[str, ...] = (
        "off",
        *(v for v in args.variants.split(",") if v in VARIANTS and v != "off"),
    )
    if args.before is not None:
        chosen += tuple(BEFORE + v for v in ("off", "ours") if v in chosen)
    print(f"counting {', '.join(chosen)} under callgrind ({args.requests} requests each) ...")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            v: pool.submit(count, v, args.requests, args.connections, args.before, args.idle)
            for v in chosen
        }
        figures = {v: f.result() for v, f in futures.items()}
    print(f"\nGET /healthz, instructions a request ({args.connections} connection(s)):")
    base = {"": figures["off"], BEFORE: figures.get(BEFORE + "off", figures["off"])}
    for variant, value in figures.items():
        off = base[BEFORE if variant.startswith(BEFORE) else ""]
        print(f"{variant:15} {value:12,.0f}  {value / off:7.4f} of off  {value - off:+10,.0f}")
    ours = figures.get("ours")
    if ours is not None:
        print(f"\nours executes {100 * (ours / figures['off'] - 1):+.2f}% instructions a request")


if __name__ == "__main__":
    main()
