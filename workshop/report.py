"""The workshop's report: a Markdown page with one chart per scenario (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: render to files
import matplotlib.pyplot as plt

from workshop.core import Comparison, Outcome


def _fmt(value: float, unit: str) -> str:
    if value != value:  # NaN: nothing measured
        return "-"
    return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:,.0f} {unit}"


def _ratio(ratio: float) -> str:
    # A hundredfold drop printed as "0.00x" would hide the figure the room came for.
    if 0 < ratio < 0.1:
        return f"{ratio:.2g}x (1/{1 / ratio:,.0f})"
    return f"{ratio:.2f}x"


def table_rows(outcome: Outcome) -> list[list[str]]:
    rows = []
    for c in outcome.comparisons:
        unit = c.figure.unit
        rows.append(
            [
                c.figure.label,
                _fmt(c.before.median, unit),
                _fmt(c.after.median, unit),
                f"{_fmt(c.before.low, '')}-{_fmt(c.before.high, unit)}",
                f"{_fmt(c.after.low, '')}-{_fmt(c.after.high, unit)}",
                _ratio(c.ratio),
            ]
        )
    return rows


HEADERS = [
    "figure",
    "before (median)",
    "after (median)",
    "before spread",
    "after spread",
    "after/before",
]


def chart(outcome: Outcome, path: Path) -> Path:
    """One panel per figure: every round's value, before and after side by side."""
    shown: list[Comparison] = [c for c in outcome.comparisons if c.before.values or c.after.values]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(3.2 * max(1, len(shown)), 3.2))
    axes_list = list(axes) if len(shown) > 1 else [axes]
    for ax, c in zip(axes_list, shown, strict=False):
        ax.boxplot([c.before.values, c.after.values], tick_labels=["before", "after"])
        ax.set_title(c.figure.label, fontsize=9)
        ax.set_ylabel(c.figure.unit)
    fig.suptitle(f"{outcome.scenario}: {outcome.title}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(out: Path, outcomes: list[Outcome], meta: dict[str, Any]) -> Path:
    lines = [
        "# Workshop report",
        "",
        f"Run at {meta['started']} on {meta['host']}, load average {meta['load_before']} before "
        f"and {meta['load_after']} after; {meta['rounds']} interleaved rounds per scenario"
        f"{' (quick mode)' if meta['quick'] else ''}.",
        "",
    ]
    for outcome in outcomes:
        image = chart(outcome, out / f"{outcome.scenario}.png")
        lines += [
            f"## {outcome.scenario}: {outcome.title}",
            "",
            f"Before: {outcome.before_label}. After: {outcome.after_label}.",
            "",
            "| " + " | ".join(HEADERS) + " |",
            "|" + " --- |" * len(HEADERS),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(outcome)]
        lines.append("")
        for key, value in outcome.facts.items():
            lines.append(f"- {key.replace('_', ' ')}: {value}")
        for claim, held in outcome.checks.items():
            lines.append(f"- {'held' if held else 'DID NOT HOLD'}: {claim}")
        lines += [
            *(f"- {note}" for note in outcome.notes),
            "",
            f"![{outcome.scenario}]({image.name})",
            "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
