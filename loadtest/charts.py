"""Inline SVG charts for the HTML report: a line chart and a grouped horizontal bar chart.

Hand-written SVG rather than matplotlib: the report stays one self-contained file that any
browser opens, and the load test adds no plotting dependency (with its native wheels) for four
simple charts.
"""

from __future__ import annotations

import math
from html import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")
_W, _H, _L, _R, _T, _B = 760, 240, 60, 20, 30, 36


def _nice(top: float) -> float:
    if top <= 0 or not math.isfinite(top):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 2.5, 5, 10):
        if top <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def line_chart(title: str, unit: str, series: dict[str, list[float]], bars: bool = False) -> str:
    """One value per second for each named series (bars: the first series as columns)."""
    length = max((len(v) for v in series.values()), default=0) or 1
    top = _nice(max((max(v, default=0.0) for v in series.values()), default=0.0))
    width, height = _W - _L - _R, _H - _T - _B

    def x(i: float) -> float:
        return _L + width * i / max(1, length - 1 if not bars else length)

    def y(v: float) -> float:
        return _T + height * (1 - min(v, top) / top)

    parts = [f'<text x="{_L}" y="18" class="title">{escape(title)}</text>']
    for k in range(5):
        value = top * k / 4
        parts.append(
            f'<line x1="{_L}" x2="{_W - _R}" y1="{y(value):.1f}" y2="{y(value):.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{_L - 6}" y="{y(value) + 4:.1f}" class="axis" '
            f'text-anchor="end">{value:g}</text>'
        )
    for i in range(0, length, max(1, length // 10)):
        parts.append(
            f'<text x="{x(i):.1f}" y="{_H - 18}" class="axis" text-anchor="middle">{i}s</text>'
        )
    for n, (name, values) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        if bars and n == 0:
            w = max(1.0, width / length - 1)
            for i, v in enumerate(values):
                parts.append(
                    f'<rect x="{x(i):.1f}" y="{y(v):.1f}" width="{w:.1f}" '
                    f'height="{_T + height - y(v):.1f}" fill="{colour}"/>'
                )
        else:
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            )
        parts.append(
            f'<text x="{_L + 10 + 130 * n}" y="{_H - 2}" class="legend" '
            f'fill="{colour}">■ {escape(name)}</text>'
        )
    parts.append(f'<text x="{_W - _R}" y="18" class="axis" text-anchor="end">{escape(unit)}</text>')
    return _svg(_W, _H, parts)


def bar_chart(title: str, unit: str, rows: list[tuple[str, dict[str, float]]]) -> str:
    """Horizontal bars: one group per row label, one bar per key (p50, p95, p99...)."""
    keys = list(rows[0][1]) if rows else []
    band = 10 * max(1, len(keys)) + 8
    left, height = 330, _T + band * len(rows) + 30
    top = _nice(max((v for _, vals in rows for v in vals.values() if math.isfinite(v)), default=0))
    width = _W - left - _R
    parts = [f'<text x="10" y="18" class="title">{escape(title)}</text>']
    for k in range(5):
        gx = left + width * k / 4
        parts.append(
            f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{_T}" y2="{height - 24}" class="grid"/>'
        )
        parts.append(
            f'<text x="{gx:.1f}" y="{height - 10}" class="axis" text-anchor="middle">'
            f"{top * k / 4:g}</text>"
        )
    for r, (label, values) in enumerate(rows):
        base = _T + r * band
        parts.append(
            f'<text x="{left - 6}" y="{base + band / 2 + 3:.1f}" class="axis" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        for k, key in enumerate(keys):
            v = values.get(key, 0.0)
            v = v if math.isfinite(v) else 0.0
            parts.append(
                f'<rect x="{left}" y="{base + 4 + 10 * k}" height="8" '
                f'width="{width * min(v, top) / top:.1f}" fill="{COLOURS[k % 5]}">'
                f"<title>{escape(label)} {key}: {v:g} {unit}</title></rect>"
            )
    for k, key in enumerate(keys):
        parts.append(
            f'<text x="{left + 70 * k}" y="18" class="legend" '
            f'fill="{COLOURS[k % 5]}">■ {escape(key)}</text>'
        )
    parts.append(f'<text x="{_W - _R}" y="18" class="axis" text-anchor="end">{escape(unit)}</text>')
    return _svg(_W, height, parts)


def _svg(width: int, height: int, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">\n{body}\n</svg>'
    )
