"""Reading the process's metrics as exact samples, and what a block of code changed in them."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY

Key = tuple[str, tuple[tuple[str, str], ...]]


def snapshot(prefixes: Iterable[str]) -> dict[Key, float]:
    wanted = tuple(prefixes)
    found: dict[Key, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name.startswith(wanted):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def changes(before: dict[Key, float], after: dict[Key, float]) -> dict[Key, float]:
    """Every sample that moved, by how much (new series count from zero)."""
    moved: dict[Key, float] = {}
    for key, value in after.items():
        diff = value - before.get(key, 0.0)
        if diff:
            moved[key] = diff
    return moved


def key(name: str, **labels: str) -> Key:
    return (name, tuple(sorted(labels.items())))


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
