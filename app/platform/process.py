"""Process-wide tuning of a long-running server: the cyclic garbage collector.

CPython's collector runs a young-generation pass whenever tracked container objects allocated
minus those freed exceed the generation-0 threshold (700 by default). A server with dozens of
requests in flight keeps that many young objects alive at any moment, so with the default it
collects several hundred times a second, each pass promoting the in-flight requests' objects
(alive, but garbage a millisecond later) into the older generations; the oldest generation's
passes then walk the whole heap: every module, route, model and schema built at startup, about
140,000 objects and ~70 ms a pass here. Measured on ``GET /healthz`` at 32 connections (``make
bench-http``): 1,742 young, 158 middle and 6 full collections in 60,000 requests, 5-6% of the
worker's CPU time, and 70 ms pauses in the latency tail.

Two standard remedies, applied once startup is done (``APP_GC_FREEZE``,
``APP_GC_GEN0_THRESHOLD``):

- ``gc.freeze()`` after a last full collection: what startup built moves to a permanent
  generation that no pass walks again (it is still freed by reference counting).
- A higher generation-0 threshold (10,000): requests' short-lived objects die by reference
  counting before a pass sees them, and what a pass does promote is what really lives on.

A process that builds many apps (the test suite) keeps both off: frozen objects are never
collected, so an app's cycles would outlive it.
"""

from __future__ import annotations

import gc


def tune_garbage_collector(*, freeze: bool, gen0_threshold: int) -> None:
    """Raise generation 0's threshold (0 keeps Python's) and freeze what exists now."""
    if gen0_threshold:
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(gen0_threshold, middle, oldest)
    if freeze:
        gc.collect()  # what startup left as garbage is freed, not frozen
        gc.freeze()
