"""A scenario, its interleaved rounds, and the figures a room is shown.

Every scenario measures a "before" and an "after" with the same traffic, in rounds that
alternate (before, after, before, after, ...) so that a machine that slows down halfway hurts
both alike; each figure is reported as the median over rounds, its p95 and spread, and the ratio
after / before of the medians.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tools.pgstack import Stack


@dataclass(frozen=True)
class Figure:
    """One measured quantity: its unit, and whether lower is better (latency) or not."""

    key: str
    label: str
    unit: str
    lower_is_better: bool = True


@dataclass
class Summary:
    median: float
    p95: float
    low: float
    high: float
    values: list[float]

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        data = sorted(values)
        if not data:
            return cls(float("nan"), float("nan"), float("nan"), float("nan"), [])
        return cls(statistics.median(data), percentile(data, 95), data[0], data[-1], data)


def percentile(sorted_values: list[float], p: float) -> float:
    """The nearest-rank percentile of already sorted values (exact, no buckets)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Comparison:
    figure: Figure
    before: Summary
    after: Summary

    @property
    def ratio(self) -> float:
        """after / before of the medians (below 1: the after is smaller)."""
        if not self.before.median:
            return float("inf") if self.after.median else 1.0
        return self.after.median / self.before.median


@dataclass
class Outcome:
    """What a scenario showed: compared figures, facts, and whether its claim held."""

    scenario: str
    title: str
    before_label: str
    after_label: str
    rounds: int
    comparisons: list[Comparison] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def comparison(self, key: str) -> Comparison:
        return next(c for c in self.comparisons if c.figure.key == key)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for item, comparison in zip(data["comparisons"], self.comparisons, strict=True):
            item["ratio"] = comparison.ratio
        data["passed"] = self.passed
        return data


@dataclass
class Context:
    """Where a scenario runs: the databases, the output folder, how long to measure."""

    stack: Stack
    out: Path
    rounds: int
    quick: bool
    progress: Callable[[str], None]
    advance: Callable[[float], None]
    db: str = "app"  # the database on the stack that holds the seeded data

    @property
    def primary_url(self) -> str:
        return self.stack.url(self.stack.primary_port, db=self.db)

    @property
    def replica_url(self) -> str:
        return self.stack.url(self.stack.replica_port, db=self.db)


class Scenario(Protocol):
    id: str
    title: str
    problem: str
    fix: str

    def run(self, ctx: Context) -> Outcome: ...


def interleaved(
    rounds: int, before: Callable[[], dict[str, float]], after: Callable[[], dict[str, float]]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Run ``before`` and ``after`` alternately; each returns one round's figures by key."""
    seen_before: dict[str, list[float]] = {}
    seen_after: dict[str, list[float]] = {}
    for _ in range(rounds):
        for measure, seen in ((before, seen_before), (after, seen_after)):
            for key, value in measure().items():
                seen.setdefault(key, []).append(value)
    return seen_before, seen_after


def compare(
    figures: Iterable[Figure], before: dict[str, list[float]], after: dict[str, list[float]]
) -> list[Comparison]:
    return [
        Comparison(f, Summary.of(before.get(f.key, [])), Summary.of(after.get(f.key, [])))
        for f in figures
    ]


def write_results(out: Path, outcomes: list[Outcome], meta: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    payload = {"meta": meta, "scenarios": [o.to_json() for o in outcomes]}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
