"""The run's outputs: the terminal summary (rich), CSV, JSON and a one-file HTML report."""

from __future__ import annotations

import csv
import json
import math
from html import escape
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.charts import bar_chart, line_chart
from loadtest.samples import Sample


def _ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 1000:.1f}"


def _pct(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.2%}"


def _num(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _mark(passed: bool | None) -> str:
    return {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "[yellow]not judged[/]"}[
        passed
    ]


def endpoint_table(result: dict[str, Any]) -> Table:
    table = Table(title="Per endpoint: client (exact, from the intended send time) | server")
    for column in (
        "endpoint",
        "n",
        "5xx",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "> bound",
        "srv n",
        "srv 5xx",
        "srv p50",
        "srv p95",
        "srv p99",
        "srv > bound",
    ):
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    for row in result["endpoints"].values():
        c, s = row["client"], row.get("server") or {}
        table.add_row(
            row["name"],
            str(c["count"]),
            str(c["server_errors"]),
            _ms(c["p50"]),
            _ms(c["p95"]),
            _ms(c["p99"]),
            _pct(c["slow_ratio"]),
            f"{s.get('count', 0):g}" if s else "-",
            f"{s.get('server_errors', 0):g}" if s else "-",
            _ms(s.get("p50")),
            _ms(s.get("p95")),
            _ms(s.get("p99")),
            _pct(s.get("slow_ratio")),
        )
    return table


def checks_table(result: dict[str, Any]) -> Table:
    table = Table(title="Checks (thresholds from prometheus/rules/)")
    for column in ("kind", "check", "scope", "value", "limit", "result", "detail"):
        table.add_column(column)
    shown = [c for c in result["checks"] if c["kind"] != "agreement" or c["passed"] is False]
    for c in shown:
        value, limit = c["value"], c["limit"]
        fmt = _pct if c["kind"] in ("slo", "business") else _num
        table.add_row(
            c["kind"],
            c["name"],
            c["scope"],
            fmt(value) if value is not None else "-",
            fmt(limit) if limit is not None else "-",
            _mark(c["passed"]),
            c["detail"],
        )
    agreed = [c for c in result["checks"] if c["kind"] == "agreement"]
    ok = sum(c["passed"] is True for c in agreed)
    table.caption = f"client vs server agreement: {ok} of {len(agreed)} checks within tolerance"
    return table


def print_summary(result: dict[str, Any], console: Console) -> None:
    run, tally = result["run"], result["tally"]
    console.print(endpoint_table(result))
    if result.get("steps") and len(result["steps"]) > 1:
        steps = Table(title="Steps (client view)")
        for column in ("arrivals/s", "requests", "p99 ms", "5xx", "> bound", "SLOs"):
            steps.add_column(column, justify="right")
        for row in result["steps"]:
            steps.add_row(
                f"{row['rate']:g}",
                str(row["requests"]),
                _ms(row["p99"]),
                _pct(row["error_ratio"]),
                _pct(row["slow_ratio"]),
                "met" if row["met"] else "broken: " + ", ".join(row["broken"]),
            )
        console.print(steps)
        console.print(f"highest rate meeting the SLOs: {result.get('highest_rate')} arrivals/s")
    console.print(checks_table(result))
    business = result["business"]
    console.print(f"business (client): {business['client']}")
    if business["server"]:
        console.print(f"business (server): {business['server']}")
    database = result.get("database")
    if database:
        queries = database["queries"]
        share = queries.get("primary", 0.0) / (sum(queries.values()) or 1.0)
        console.print(
            f"database: {share:.1%} of {sum(queries.values()):g} statements on the primary; "
            f"pool waits {database['pool_waits']}, over 10 ms {database['pool_waits_over_10ms']}, "
            f"p99 { ({k: round(v * 1000, 1) for k, v in database['pool_wait_p99'].items()}) } ms"
        )
    console.print(
        f"arrivals {tally['scheduled']} scheduled, dropped {tally['dropped']}, cut {tally['cut']}, "
        f"journeys failed {sum(tally['failed'].values())}; load average {run['load_average']}"
    )
    if result["passed"]:
        console.print("[bold green]VERDICT: PASS[/]")
    else:
        console.print("[bold red]VERDICT: FAIL[/] " + "; ".join(result["broken"]))


def write_csv(samples: list[Sample], result: dict[str, Any], out: Path) -> None:
    start = result["run"]["window"]["first_arrival"]
    with (out / "samples.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "intended_s",
                "sent_s",
                "elapsed_ms",
                "response_ms",
                "method",
                "route",
                "module",
                "journey",
                "step",
                "status",
                "error",
            ]
        )
        for s in samples:
            writer.writerow(
                [
                    f"{s.intended - start:.4f}",
                    f"{s.sent - start:.4f}",
                    f"{s.elapsed * 1000:.2f}",
                    f"{s.response_time * 1000:.2f}",
                    s.method,
                    s.route,
                    s.module,
                    s.journey,
                    s.step,
                    s.status,
                    s.error,
                ]
            )
    with (out / "endpoints.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        keys = [
            "count",
            "server_errors",
            "client_errors",
            "p50",
            "p95",
            "p99",
            "max",
            "slow_ratio",
            "lag_p99",
        ]
        server_keys = ["count", "server_errors", "p50", "p95", "p99", "slow_ratio"]
        writer.writerow(["endpoint", *keys, *(f"server_{k}" for k in server_keys)])
        for row in result["endpoints"].values():
            server = row.get("server") or {}
            writer.writerow(
                [
                    row["name"],
                    *(row["client"][k] for k in keys),
                    *(server.get(k, "") for k in server_keys),
                ]
            )


def write_json(result: dict[str, Any], path: Path) -> None:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(result), indent=2, sort_keys=False), encoding="utf-8")


_STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:12px 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 7px;text-align:right}td:first-child,th:first-child{text-align:left}
.fail{color:#b00;font-weight:bold}.pass{color:#080}.title{font-size:14px;font-weight:bold}
.axis{font-size:10px;fill:#555}.legend{font-size:11px}.grid{stroke:#eee}"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(result: dict[str, Any], path: Path) -> None:
    timeline = result["timeline"]
    ms = [row["p50"] * 1000 for row in timeline], [row["p99"] * 1000 for row in timeline]
    charts = [
        line_chart(
            "Latency over time (by intended send second)", "ms", {"p50": ms[0], "p99": ms[1]}
        ),
        line_chart("Throughput", "requests/s", {"requests": [r["requests"] for r in timeline]}),
        line_chart(
            "Errors (5xx and unanswered)",
            "requests/s",
            {"5xx": [r["server_errors"] for r in timeline]},
            bars=True,
        ),
        bar_chart(
            "Per-endpoint percentiles (client)",
            "ms",
            [
                (row["name"], {k: row["client"][k] * 1000 for k in ("p50", "p95", "p99")})
                for row in result["endpoints"].values()
            ],
        ),
    ]
    endpoints = [
        [
            escape(row["name"]),
            str(row["client"]["count"]),
            str(row["client"]["server_errors"]),
            *(_ms(row["client"][k]) for k in ("p50", "p95", "p99")),
            _pct(row["client"]["slow_ratio"]),
            *(_ms((row.get("server") or {}).get(k)) for k in ("p50", "p95", "p99")),
        ]
        for row in result["endpoints"].values()
    ]
    checks = [
        [
            escape(c["kind"]),
            escape(c["name"]),
            escape(c["scope"]),
            escape(str(c["value"])),
            escape(str(c["limit"])),
            {
                True: '<span class="pass">pass</span>',
                False: '<span class="fail">FAIL</span>',
                None: "not judged",
            }[c["passed"]],
            escape(c["detail"]),
        ]
        for c in result["checks"]
    ]
    steps = [
        [escape(journey), escape(step), str(st["count"]), _ms(st["p50"]), _ms(st["p95"]),
         _ms(st["p99"]), _pct(st["slow_ratio"])]
        for journey, row in result["journeys"].items()
        for step, st in row["steps"].items()
    ]  # fmt: skip
    verdict = "PASS" if result["passed"] else "FAIL: " + "; ".join(result["broken"])
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>Load test report</title>
<style>{_STYLE}</style></head><body>
<h1>Load test: <span class="{"pass" if result["passed"] else "fail"}">{escape(verdict)}</span></h1>
<p>{escape(json.dumps(result["run"]))}</p>
{"".join(f"<div>{c}</div>" for c in charts)}
<h2>Endpoints</h2>
{
        _html_table(
            [
                "endpoint",
                "n",
                "5xx",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "> bound",
                "server p50",
                "server p95",
                "server p99",
            ],
            endpoints,
        )
    }
<h2>Journey steps (client)</h2>
{_html_table(["journey", "step", "n", "p50 ms", "p95 ms", "p99 ms", "> bound"], steps)}
<h2>Database and business (server)</h2>
<p>{escape(json.dumps(result.get("database")))}</p>
<p>{escape(json.dumps(result["business"]))}</p>
<h2>Checks</h2>
{_html_table(["kind", "check", "scope", "value", "limit", "result", "detail"], checks)}
</body></html>"""
    path.write_text(html, encoding="utf-8")
