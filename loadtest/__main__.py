"""``python -m loadtest``: the mixed journeys at an open-model rate, then the verdict.

Exit status: 0 when every check passed, 1 when one failed (an SLO, a business SLI, the
client-server agreement, the baseline), 2 when the run could not be made (no seed, no
Prometheus). ``python -m loadtest baseline OUT RUN.json...`` builds a baseline from runs.
"""

from gevent import monkey

monkey.patch_all()  # before anything opens a socket (locust would do it on import, too)

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path  # noqa: E402

from rich.console import Console  # noqa: E402

from loadtest import baseline, report  # noqa: E402
from loadtest.openmodel import RunArgs  # noqa: E402
from loadtest.prom import PrometheusUnavailable  # noqa: E402
from loadtest.runner import Options, execute  # noqa: E402
from loadtest.shape import Shape  # noqa: E402
from loadtest.world import SetupFailed  # noqa: E402

DEV_METRICS_TOKEN = "dev-insecure-metrics-token"  # noqa: S105 - .env.example's default


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default=os.environ.get("LOADTEST_HOST", "http://127.0.0.1:8000"))
    p.add_argument("--rate", type=float, default=5.0, help="arrivals (visits) per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals")
    p.add_argument("--shape", choices=("constant", "step"), default="constant")
    p.add_argument("--steps", type=int, default=5, help="stretches of --shape step")
    p.add_argument("--think", type=float, default=0.5, help="mean think time between requests")
    p.add_argument("--seed", type=int, default=1, help="the journeys' random choices")
    p.add_argument("--members", type=int, default=100, help="seeded members to sign in as")
    p.add_argument("--admin-email", default="admin@example.com")
    p.add_argument("--password", default=os.environ.get("LOADTEST_PASSWORD", "demo-Password-1"))
    p.add_argument(
        "--prometheus",
        default=os.environ.get("LOADTEST_PROMETHEUS", "auto"),
        help="its URL; 'auto': http://127.0.0.1:9090 if it scrapes the app, else a "
        "private one started for the run; 'none': the client's view alone",
    )
    p.add_argument("--job", default="app", help="Prometheus's job name of the app")
    p.add_argument(
        "--metrics-token", default=os.environ.get("APP_METRICS_TOKEN", DEV_METRICS_TOKEN)
    )
    p.add_argument("--out", type=Path, default=None, help="folder for CSV, JSON and HTML")
    p.add_argument("--baseline", type=Path, default=None, help="fail on a regression past it")
    p.add_argument("--tolerance-count", type=float, default=0.01)
    p.add_argument("--tolerance-slow-share", type=float, default=0.02)
    p.add_argument("--max-in-flight", type=int, default=2000)
    p.add_argument("--drain", type=float, default=30.0, help="seconds to let visits finish")
    p.add_argument("--timeout", type=float, default=30.0, help="a request's network timeout")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["baseline"]:
        if len(argv) < 4:
            print("usage: python -m loadtest baseline OUT.json RUN1.json RUN2.json...")
            return 2
        return baseline.main(Path(argv[1]), [Path(a) for a in argv[2:]])
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    out = args.out or Path("var/loadtest") / time.strftime("%Y%m%d-%H%M%S")
    options = Options(
        host=args.host.rstrip("/"),
        shape=Shape(args.shape, args.rate, args.duration, args.steps),
        run=RunArgs(
            think=args.think,
            seed=args.seed,
            timeout=args.timeout,
            max_in_flight=args.max_in_flight,
            drain=args.drain,
        ),
        members=args.members,
        admin_email=args.admin_email,
        password=args.password,
        prometheus=args.prometheus,
        job=args.job,
        metrics_token=args.metrics_token,
        out=out,
        baseline=args.baseline,
        tolerance=(args.tolerance_count, args.tolerance_slow_share),
        progress=not args.no_progress,
    )
    with ExitStack() as stack:
        try:
            result = execute(options, console, stack)
        except (SetupFailed, PrometheusUnavailable) as exc:
            console.print(f"[bold red]load test not run:[/] {exc}")
            return 2
    report.print_summary(result, Console(width=200))
    console.print(f"reports: {out}/report.html, result.json, samples.csv, endpoints.csv")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
