"""Declaring metrics once, multiprocess-safe, and rendering them for a scrape.

Every metric of the process (the platform's and each module's business metrics) is declared with
``counter()``, ``histogram()`` or ``gauge()`` from here:

- declaring the same name twice (a module imported again by a test, a reload) returns the metric
  already declared instead of failing with "Duplicated timeseries", as long as it is the same
  kind with the same labels; a clash is a programming error and raises;
- a gauge must say how it aggregates across worker processes (``multiprocess_mode``), because
  with ``PROMETHEUS_MULTIPROC_DIR`` set each worker writes its own file and the scrape merges them;
- ``render()`` serves one registry in single-process mode and merges the workers' files in
  multiprocess mode.

prometheus_client chooses in-memory or file-backed values when it is first imported, from
``PROMETHEUS_MULTIPROC_DIR``; ``python -m app serve`` sets up that folder before any worker starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, TypeVar

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

MultiprocessMode = Literal[
    "all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent",
    "livemostrecent",
]  # fmt: skip

# The ``*_created`` series double what every counter and histogram exposes and no rule uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_M = TypeVar("_M", Counter, Gauge, Histogram)
_declared: dict[str, Counter | Gauge | Histogram] = {}


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _existing(kind: type[_M], name: str, labelnames: Sequence[str]) -> _M | None:
    found = _declared.get(name)
    if found is None:
        return None
    if not isinstance(found, kind) or tuple(found._labelnames) != tuple(labelnames):
        raise ValueError(
            f"metric {name!r} is already declared as a {type(found).__name__} with labels "
            f"{tuple(found._labelnames)}"
        )
    return found


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
    """A counter; ``name`` ends in ``_total`` (the exposition keeps it as written)."""
    if not name.endswith("_total"):
        raise ValueError(f"counter {name!r} must end in _total")
    found = _existing(Counter, name, labelnames)
    if found is None:
        found = Counter(name, documentation, labelnames)
        _declared[name] = found
    return found


def histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
) -> Histogram:
    """A histogram; name it in base units (``_seconds``, ``_bytes``)."""
    found = _existing(Histogram, name, labelnames)
    if found is None:
        found = Histogram(name, documentation, labelnames, buckets=buckets)
        _declared[name] = found
    return found


def gauge(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    multiprocess_mode: MultiprocessMode,
) -> Gauge:
    """A gauge. ``multiprocess_mode`` is required: ``livesum`` for "how many right now" across
    live workers, ``max``/``min`` for extremes, ``mostrecent`` for a value set from one place."""
    found = _existing(Gauge, name, labelnames)
    if found is None:
        found = Gauge(name, documentation, labelnames, multiprocess_mode=multiprocess_mode)
        _declared[name] = found
    return found


def render(accept: str | None) -> tuple[bytes, str]:
    """The exposition for a scrape: OpenMetrics or Prometheus text, by the Accept header."""
    encoder, content_type = choose_encoder(accept or "")
    path = multiprocess_dir()
    if path is None:
        return encoder(REGISTRY), content_type
    # A fresh registry per scrape: the collector reads every worker's files each time.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return encoder(registry), content_type
