"""One run from start to verdict: setup, the scrape-bounded window, the load, both views."""

from __future__ import annotations

import contextlib
import json
import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from loadtest import baseline as baselines
from loadtest import report, slo
from loadtest.openmodel import RunArgs, run
from loadtest.prom import Prometheus, PrometheusUnavailable, server_view
from loadtest.recorder import Recorder
from loadtest.samples import Sample, grouped, per_second, stats
from loadtest.shape import Shape, Tally
from loadtest.verdict import (
    Check,
    Tolerance,
    agreement_checks,
    business_checks,
    harness_checks,
    highest_rate,
    route_key,
    server_slo_checks,
    slo_checks,
    steps,
)
from loadtest.world import discover

LOCAL_PROMETHEUS = "http://127.0.0.1:9090"


@dataclass
class Options:
    host: str
    shape: Shape
    run: RunArgs
    members: int
    admin_email: str
    password: str
    prometheus: str
    job: str
    metrics_token: str
    out: Path
    baseline: Path | None
    tolerance: tuple[float, float]
    progress: bool = True


def _scrapes_app(url: str, job: str) -> bool:
    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError, PrometheusUnavailable):
        return bool(Prometheus(url, job).query(f'up{{job="{job}"}} == 1'))
    return False


def _private_prometheus(options: Options, stack: ExitStack, console: Console) -> Prometheus:
    """Debian's Prometheus for this run alone: scrapes the app every second, stopped after."""
    from tools import monitor
    from tools.pgstack import free_port

    folder = options.out / "prometheus"
    port = free_port()
    config = monitor.render_prometheus_config(
        app_target=urlsplit(options.host).netloc,
        metrics_token=options.metrics_token,
        prometheus_target=f"127.0.0.1:{port}",
        alertmanager_target=None,
        postgres_targets=None,
        # 2 s: the scrape's timeout is its interval, and a loaded server answers slowly.
        scrape_interval="2s",
        evaluation_interval="2s",
        environment="loadtest",
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        service = monitor.start_prometheus(
            folder / "prometheus.yml", folder / "data", port, folder / "prometheus.log"
        )
        stack.enter_context(monitor.running(service))
    except monitor.MonitorError as exc:
        raise PrometheusUnavailable(f"{exc} (or pass --prometheus URL, or 'none')") from exc
    console.print(f"private Prometheus on {service.url} (scraping {urlsplit(options.host).netloc})")
    return Prometheus(service.url, options.job)


def resolve_prometheus(options: Options, stack: ExitStack, console: Console) -> Prometheus | None:
    if options.prometheus == "none":
        return None
    if options.prometheus != "auto":
        return Prometheus(options.prometheus.rstrip("/"), options.job)
    if _scrapes_app(LOCAL_PROMETHEUS, options.job):
        return Prometheus(LOCAL_PROMETHEUS, options.job)
    return _private_prometheus(options, stack, console)


def _progress(console: Console, options: Options) -> tuple[Progress, Any]:
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not options.progress,
    )
    task = bar.add_task("starting", total=options.shape.duration)

    def update(elapsed: float, tally: Tally, recorder: Recorder, in_flight: int) -> None:
        recent = list(recorder.samples[-500:])
        p99 = stats(recent, 0.5).p99 if recent else 0.0
        errors = sum(s.server_error for s in recorder.samples)
        bar.update(
            task,
            completed=min(elapsed, options.shape.duration),
            description=(
                f"visits {sum(tally.started.values())}/{tally.scheduled} in flight {in_flight:>4} "
                f"requests {len(recorder.samples):>6} 5xx {errors} "
                f"p99(last 500) {p99 * 1000:.0f} ms"
            ),
        )

    return bar, update


def _endpoints(
    samples: list[Sample], server: dict[str, Any] | None, bound: float
) -> dict[str, Any]:
    client = grouped(samples, route_key, bound)
    names = {route_key(s): f"{s.method} {s.route}" for s in samples}
    rows = {}
    for key, st in client.items():
        row: dict[str, Any] = {"name": names[key], "client": st.as_dict()}
        seen = (server or {}).get("routes", {}).get(key)
        if seen:
            n = seen.get("count", 0.0)
            row["server"] = {
                **seen,
                "slow_ratio": 1 - seen.get("within_bound", 0.0) / n if n else 0.0,
            }
        rows[key] = row
    return rows


def _journeys(samples: list[Sample], bound: float) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for journey, st in grouped(samples, lambda s: s.journey, bound).items():
        inside = [s for s in samples if s.journey == journey]
        found[journey] = {
            "requests": st.as_dict(),
            "steps": {
                step: st2.as_dict()
                for step, st2 in grouped(inside, lambda s: s.step, bound).items()
            },
        }
    return found


def _checks(
    samples: list[Sample],
    server: dict[str, Any] | None,
    tally: Tally,
    objectives: slo.Objectives,
    tolerance: Tolerance,
) -> tuple[list[Check], dict[str, float]]:
    bound = objectives.latency_bound_seconds
    checks = slo_checks(grouped(samples, lambda s: s.module, bound), objectives, "client")
    business, found = business_checks(samples, server, objectives)
    if server is not None:
        checks += server_slo_checks(server, objectives)
        by_route = grouped(samples, route_key, bound)
        elapsed_slow = {
            key: float(sum(s.elapsed > bound for s in samples if route_key(s) == key))
            for key in by_route
        }
        checks += agreement_checks(by_route, elapsed_slow, server, tolerance)
    return checks + found + harness_checks(samples, tally), business


def _seconds(samples: list[Sample], first: float) -> int:
    return int(max((s.intended for s in samples), default=first) - first) + 1


def execute(options: Options, console: Console, stack: ExitStack) -> dict[str, Any]:
    objectives = slo.load()
    records = slo.recording_rules()
    options.out.mkdir(parents=True, exist_ok=True)
    console.print(f"setup: reading the seeded members and products from {options.host}")
    world = discover(
        options.host,
        admin_email=options.admin_email,
        password=options.password,
        members=options.members,
    )
    prom = resolve_prometheus(options, stack, console)
    # The window opens at the first scrape after setup's last request was recorded.
    time.sleep(0.5)
    window_start = prom.scrape_after(time.time()) if prom else time.time()
    bar, update = _progress(console, options)
    with bar:
        first, last, tally, recorder = run(options.host, world, options.shape, options.run, update)
    time.sleep(0.5)  # the server records a request just after its answer leaves
    samples = recorder.samples
    bound = objectives.latency_bound_seconds
    server, unseen = None, []
    window_end = time.time()
    if prom is not None:
        try:
            window_end = prom.scrape_after(window_end, timeout=180)
            server = server_view(prom, records, bound, window_start, window_end)
        except PrometheusUnavailable as exc:
            # A server too busy to be scraped is a finding, not a reason to lose the client's.
            unseen = [Check("harness", "server view", "prometheus", None, None, False, str(exc))]
    tolerance = Tolerance(count=options.tolerance[0], slow_share=options.tolerance[1])
    checks, business = _checks(samples, server, tally, objectives, tolerance)
    checks += unseen
    step_rows = steps(samples, options.shape, first, objectives)
    result: dict[str, Any] = {
        "run": {
            "host": options.host,
            "shape": asdict(options.shape),
            "think": options.run.think,
            "seed": options.run.seed,
            "prometheus": prom.url if prom else None,
            "window": {
                "start": window_start,
                "end": window_end,
                "first_arrival": first,
                "last_answer": last,
            },
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "objectives": objectives.as_dict(),
        "tolerance": asdict(tolerance),
        "tally": {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(tally).items()},
        "total": stats(samples, bound).as_dict(),
        "modules": {m: s.as_dict() for m, s in grouped(samples, lambda s: s.module, bound).items()},
        "endpoints": _endpoints(samples, server, bound),
        "journeys": _journeys(samples, bound),
        "business": {"client": business, "server": server["counters"] if server else None},
        "database": server["database"] if server else None,
        "server": server,
        "timeline": per_second(samples, first, _seconds(samples, first)),
        "steps": step_rows,
        "highest_rate": highest_rate(step_rows),
    }
    if options.baseline is not None:
        checks += baselines.compare(result, json.loads(options.baseline.read_text("utf-8")))
    result["checks"] = [c.as_dict() for c in checks]
    result["broken"] = [f"{c.name} {c.scope}" for c in checks if c.passed is False]
    result["passed"] = not result["broken"]
    report.write_json(result, options.out / "result.json")
    report.write_csv(samples, result, options.out)
    report.write_html(result, options.out / "report.html")
    return result
