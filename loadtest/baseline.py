"""Baselines: a noise band from repeated runs, and the regression check against it.

``python -m loadtest baseline OUT.json RUN1.json RUN2.json RUN3.json`` takes the JSON results of
repeated runs of the same shape and keeps, per endpoint and for the whole run, the lowest and
highest p95, p99 and error ratio they gave. A later run with ``--baseline OUT.json`` regresses
where its value exceeds the highest of the repeated runs by more than their spread (the noise
band: what the same code gave from run to run on the same machine), plus an absolute floor so
that sub-millisecond jitter of a fast endpoint is not a regression.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadtest.verdict import Check

METRICS = ("p95", "p99", "error_ratio")
FLOORS = {"p95": 0.002, "p99": 0.005, "error_ratio": 0.001}
MIN_RUNS = 2


def _figures(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    found = {"run": {m: result["total"][m] for m in METRICS}}
    for key, row in result["endpoints"].items():
        found[key] = {m: row["client"][m] for m in METRICS}
    return found


def make(results: list[dict[str, Any]]) -> dict[str, Any]:
    if len(results) < MIN_RUNS:
        raise ValueError(f"a noise band needs at least {MIN_RUNS} runs, got {len(results)}")
    shapes = {json.dumps(r["run"]["shape"], sort_keys=True) for r in results}
    if len(shapes) != 1:
        raise ValueError(f"the runs have different shapes: {sorted(shapes)}")
    figures = [_figures(r) for r in results]
    common = set.intersection(*(set(f) for f in figures))
    bands: dict[str, dict[str, dict[str, float]]] = {}
    for key in sorted(common):
        bands[key] = {}
        for metric in METRICS:
            values = [f[key][metric] for f in figures if f[key][metric] is not None]
            if values:
                bands[key][metric] = {"low": min(values), "high": max(values)}
    return {"runs": len(results), "shape": results[0]["run"]["shape"], "bands": bands}


def compare(result: dict[str, Any], baseline: dict[str, Any]) -> list[Check]:
    checks = []
    current = _figures(result)
    for key, band in baseline["bands"].items():
        if key not in current:
            continue
        for metric, edges in band.items():
            value = current[key][metric]
            if value is None:
                continue
            spread = edges["high"] - edges["low"]
            limit = edges["high"] + spread + FLOORS[metric]
            checks.append(
                Check(
                    "baseline",
                    f"{metric} regression",
                    key,
                    value,
                    limit,
                    value <= limit,
                    f"{baseline['runs']} runs gave {edges['low']:.4g} to {edges['high']:.4g}",
                )
            )
    return checks


def main(out: Path, runs: list[Path]) -> int:
    results = [json.loads(p.read_text("utf-8")) for p in runs]
    out.write_text(json.dumps(make(results), indent=2), encoding="utf-8")
    print(f"baseline of {len(results)} runs written to {out}")
    return 0
