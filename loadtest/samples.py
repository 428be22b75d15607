"""Every request of a run as one sample, and exact statistics over them.

Locust's own statistics keep response times in buckets rounded to two significant digits (a
p99 of 1,234 ms is reported as 1,200); a verdict at a 500 ms bound needs the real values, so
each request is kept and the percentiles are the nearest-rank order statistics of the samples.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Which module serves a path, by prefix (the app labels its series with the module of the
# endpoint function; these are the API's documented prefixes).
_MODULES = (
    ("/v1/auth/", "auth"),
    ("/v1/products", "payments"),
    ("/v1/checkout", "payments"),
    ("/v1/orders", "payments"),
    ("/v1/payments/", "payments"),
    ("/v1/notifications", "notifications"),
    ("/dev/mailbox", "notifications"),
    ("/v1/analytics/", "analytics"),
)


def module_of(route: str) -> str:
    for prefix, module in _MODULES:
        if route.startswith(prefix):
            return module
    return "platform"


@dataclass(slots=True)
class Sample:
    """One request: when it was meant to go, when it went, how long it took, what came back."""

    method: str
    route: str  # the route template, as the server labels it
    journey: str
    step: str
    intended: float  # epoch seconds: when the open model meant it to be sent
    sent: float  # epoch seconds: when it was sent
    elapsed: float  # seconds from sending to the end of the response
    status: int  # 0: no response (connection error, timeout)
    error: str = ""  # transport error, or an answer the journey did not expect
    unexpected: bool = False

    @property
    def name(self) -> str:
        return f"{self.method} {self.route}"

    @property
    def module(self) -> str:
        return module_of(self.route)

    @property
    def lag(self) -> float:
        """How late the client sent it: the load generator's own delay."""
        return max(0.0, self.sent - self.intended)

    @property
    def response_time(self) -> float:
        """From the intended send time: what a user arriving on schedule waited (coordinated
        omission corrected: a request the client sent late is not credited for it)."""
        return self.elapsed + self.lag

    @property
    def server_error(self) -> bool:
        """What the availability SLO counts against: a 5xx, or no answer at all."""
        return self.status >= 500 or self.status == 0


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (exact: one of the values)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Stats:
    count: int
    server_errors: int
    client_errors: int  # 4xx
    unexpected: int
    slow: int  # response time over the latency bound
    p50: float
    p95: float
    p99: float
    max: float
    elapsed_p99: float  # send to response end, the part the server can see
    lag_p99: float

    @property
    def error_ratio(self) -> float:
        return self.server_errors / self.count if self.count else 0.0

    @property
    def slow_ratio(self) -> float:
        return self.slow / self.count if self.count else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "server_errors": self.server_errors,
            "client_errors": self.client_errors,
            "unexpected": self.unexpected,
            "slow": self.slow,
            "error_ratio": self.error_ratio,
            "slow_ratio": self.slow_ratio,
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
            "max": self.max,
            "elapsed_p99": self.elapsed_p99,
            "lag_p99": self.lag_p99,
        }


def stats(samples: Iterable[Sample], bound: float) -> Stats:
    items = list(samples)
    times = sorted(s.response_time for s in items)
    elapsed = sorted(s.elapsed for s in items)
    lags = sorted(s.lag for s in items)
    return Stats(
        count=len(items),
        server_errors=sum(s.server_error for s in items),
        client_errors=sum(400 <= s.status < 500 for s in items),
        unexpected=sum(s.unexpected for s in items),
        # The bound as the server's histogram counts it: le="0.5" includes 0.5 itself.
        slow=sum(s.response_time > bound for s in items),
        p50=percentile(times, 50),
        p95=percentile(times, 95),
        p99=percentile(times, 99),
        max=times[-1] if times else math.nan,
        elapsed_p99=percentile(elapsed, 99),
        lag_p99=percentile(lags, 99),
    )


def grouped(
    samples: Iterable[Sample], key: Callable[[Sample], str], bound: float
) -> dict[str, Stats]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[key(sample)].append(sample)
    return {name: stats(items, bound) for name, items in sorted(groups.items())}


def per_second(samples: Iterable[Sample], start: float, seconds: int) -> list[dict[str, float]]:
    """The run second by second: sent, completed, 5xx, p50 and p99 of what completed."""
    buckets: list[list[Sample]] = [[] for _ in range(max(1, seconds))]
    for sample in samples:
        index = int(sample.intended - start)
        if 0 <= index < len(buckets):
            buckets[index].append(sample)
    rows = []
    for second, items in enumerate(buckets):
        times = sorted(s.response_time for s in items)
        rows.append(
            {
                "second": second,
                "requests": len(items),
                "server_errors": sum(s.server_error for s in items),
                "p50": percentile(times, 50) if times else 0.0,
                "p99": percentile(times, 99) if times else 0.0,
            }
        )
    return rows
