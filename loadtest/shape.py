"""The open model's schedule (``Shape``) and what became of its arrivals (``Tally``).

Apart from the runner so that the verdict and its tests import neither gevent nor locust (locust
monkey-patches the standard library when imported).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Shape:
    """Arrivals per second over the run: ``constant`` at ``rate``, or ``step``: ``steps`` equal
    stretches at rate/steps, 2*rate/steps, ... up to ``rate``."""

    kind: str
    rate: float
    duration: float
    steps: int = 5

    def windows(self) -> list[tuple[float, float, float]]:
        """(start offset, end offset, arrivals per second) of each stretch."""
        if self.kind == "constant":
            return [(0.0, self.duration, self.rate)]
        length = self.duration / self.steps
        return [
            (k * length, (k + 1) * length, self.rate * (k + 1) / self.steps)
            for k in range(self.steps)
        ]

    def arrivals(self) -> Iterator[float]:
        """Arrival offsets in seconds, evenly spaced within each stretch."""
        for begin, end, rate in self.windows():
            count = math.floor((end - begin) * rate + 1e-9)
            for i in range(count):
                yield begin + i / rate

    def expected(self) -> int:
        return sum(1 for _ in self.arrivals())


@dataclass
class Tally:
    """What happened to the arrivals (the samples hold what happened to the requests)."""

    scheduled: int = 0
    started: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    dropped: int = 0  # no room in flight
    cut: int = 0  # still running when the drain time ran out
    no_member: int = 0  # a member journey found every member busy: it browsed instead
    scheduler_lag_max: float = 0.0
