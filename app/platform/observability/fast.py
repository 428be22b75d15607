"""Hot-path handles on prometheus_client label children: one call per update, no checks.

Used where values must live in prometheus_client (multiprocess mode's files); in one process the
HTTP families skip prometheus_client on the request path altogether (``http_series.py``).

``Counter.inc`` and ``Histogram.observe`` re-check on every call what cannot change for a label
child resolved once (that it is a child, that the amount is non-negative), and the histogram
walks its buckets linearly. These handles bind the child's value objects once; an update is then
a bisect and the value's own (locked, or file-backed in multiprocess mode) increment. They rely
on prometheus_client's ``_value``, ``_sum``, ``_buckets`` and ``_upper_bounds``: the exact-sample
tests fail loudly if a release changes them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

Inc = Callable[[float], None]


def adder(child: Counter | Gauge) -> Inc:
    """``add(n)``: the child's value goes up by ``n`` (down, for a gauge, when negative)."""
    inc: Inc = child._value.inc
    return inc


class Observer:
    """``observe(v)`` of one histogram child, with a bisect instead of a bucket walk."""

    __slots__ = ("_bounds", "_buckets", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._bounds: tuple[float, ...] = tuple(child._upper_bounds)
        self._buckets: tuple[Inc, ...] = tuple(bucket.inc for bucket in child._buckets)
        self._sum: Inc = child._sum.inc

    def __call__(self, amount: float) -> None:
        # The first bound >= amount, as Histogram.observe picks it; the last bound is +Inf.
        self._buckets[bisect_left(self._bounds, amount)](1)
        if amount:
            self._sum(amount)
