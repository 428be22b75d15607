"""Demo copies of the alert rules: every window and `for:` scaled down, so a room sees an alert
fire within minutes (`make monitor DEMO=1`, the workshop's scenario C).

The shipped rules in prometheus/rules/ are never touched: the copies are written at start into
the monitor's folder. A duration in a range selector (`[10m]`, a subquery's `[1h:5m]`), after
`offset`, and in `for:` / `keep_firing_for:` is divided by ``factor`` and kept at least
``floor`` (a range shorter than a few scrapes holds too few samples for rate()). Thresholds, the
traffic guards' counts and the text of the annotations stay as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

FACTOR = 30.0
FLOOR_SECONDS = 10.0
# The demo's scrape and evaluation interval: a window of FLOOR_SECONDS holds five samples.
INTERVAL = "2s"

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"^(?:\d+(?:ms|[smhdwy]))+$")
_PART = re.compile(r"(\d+)(ms|[smhdwy])")
_RANGE = re.compile(r"\[((?:\d+(?:ms|[smhdwy]))+)(?::((?:\d+(?:ms|[smhdwy]))*))?\]")
_OFFSET = re.compile(r"\boffset\s+((?:\d+(?:ms|[smhdwy]))+)")


def seconds(duration: str) -> float:
    if not _DURATION.match(duration):
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(duration))


def format_duration(value: float) -> str:
    if value <= 0:
        return "0s"
    whole = max(1, round(value))
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)


def scale(duration: str, factor: float = FACTOR, floor: float = FLOOR_SECONDS) -> str:
    """``duration`` divided by ``factor``, never under ``floor`` seconds (nor above itself)."""
    original = seconds(duration)
    return format_duration(min(original, max(floor, original / factor)))


def scale_expr(expr: str, factor: float = FACTOR, floor: float = FLOOR_SECONDS) -> str:
    def ranged(match: re.Match[str]) -> str:
        window, step = match.group(1), match.group(2)
        scaled = scale(window, factor, floor)
        if step is None:
            return f"[{scaled}]"
        return f"[{scaled}:{scale(step, factor, 1.0) if step else ''}]"

    expr = _RANGE.sub(ranged, expr)
    return _OFFSET.sub(lambda m: f"offset {scale(m.group(1), factor, floor)}", expr)


def scale_rule_file(
    data: dict[str, Any], factor: float = FACTOR, floor: float = FLOOR_SECONDS
) -> dict[str, Any]:
    groups = []
    for group in data.get("groups", []):
        rules = []
        for rule in group["rules"]:
            copy = {**rule, "expr": scale_expr(str(rule["expr"]), factor, floor)}
            for key in ("for", "keep_firing_for"):
                if key in copy:
                    copy[key] = scale(str(copy[key]), factor, 0.0)
            rules.append(copy)
        scaled_group = {**group, "rules": rules}
        if "interval" in group:
            scaled_group["interval"] = INTERVAL
        groups.append(scaled_group)
    return {**data, "groups": groups}


def write_demo_rules(source: Path, target: Path, factor: float = FACTOR) -> list[Path]:
    """A scaled copy of every ``source/*.yml`` in ``target`` (emptied first)."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.yml"):
        old.unlink()
    written = []
    for path in sorted(source.glob("*.yml")):
        data = yaml.safe_load(path.read_text("utf-8"))
        out = target / path.name
        out.write_text(yaml.safe_dump(scale_rule_file(data, factor), sort_keys=False), "utf-8")
        written.append(out)
    return written
