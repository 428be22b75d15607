"""Open-model load on locust: arrivals on a clock, whatever the server's response times.

Locust's users are a closed model: each waits for its answer before its next request, so a
server that slows down receives fewer requests and its slowness hides (coordinated omission).
Here the arrival times are fixed before the run (``Shape``: a constant rate, or equal steps up to
the rate). A scheduler greenlet sleeps until each arrival's time and spawns a greenlet for that
visit; it never waits for earlier visits. Each visit's first request carries the arrival time as
its intended send time and later ones the time their think time ended, and the recorded
response time runs from that intended time. When the in-flight visits reach ``max_in_flight``
an arrival is dropped and counted (as k6 counts dropped iterations), never delayed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import gevent.pool
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from loadtest.journeys import MIX, browse
from loadtest.recorder import Recorder
from loadtest.samples import Sample
from loadtest.shape import Shape, Tally
from loadtest.visit import Unexpected, Visit
from loadtest.world import World


def _pick(rng: random.Random) -> str:
    names = list(MIX)
    return rng.choices(names, weights=[MIX[n][0] for n in names])[0]


def _close(session: FastHttpSession) -> None:
    pool = getattr(session.client, "clientpool", None)
    if pool is not None:
        pool.close()


def _cut(visit: Visit, recorder: Recorder) -> None:
    """A request still unanswered when the drain ran out: a sample with no answer, so that the
    slowest requests are not the ones the verdict never sees."""
    if visit.in_flight is None:
        return
    context, sent = visit.in_flight
    recorder.samples.append(
        Sample(
            context["method"],
            context["route"],
            context["journey"],
            context["step"],
            context["intended"],
            sent,
            time.time() - sent,
            0,
            "cut: no answer by the end of the drain",
            True,
        )
    )


def _visit(
    world: World,
    host: str,
    hook: EventHook,
    tally: Tally,
    index: int,
    at: float,
    args: RunArgs,
    recorder: Recorder,
) -> None:
    rng = random.Random(args.seed * 1_000_003 + index)  # noqa: S311 - a journey's dice
    name = _pick(rng)
    _, journey, needs_member = MIX[name]
    account = world.borrow(rng) if needs_member else None
    if needs_member and account is None:
        tally.no_member += 1
        name, journey, needs_member = "browse", browse, False
    # No retries: a retried request would be a second arrival the schedule never made.
    session = FastHttpSession(
        host,
        request_event=hook,
        user=None,
        network_timeout=args.timeout,
        connection_timeout=args.timeout,
        max_retries=0,
    )
    tally.started[name] += 1
    visit = Visit(session, name, at, rng, args.think)
    try:
        if account is not None:
            journey(visit, world, account)  # type: ignore[call-arg]
        else:
            journey(visit, world)  # type: ignore[call-arg]
        tally.completed[name] += 1
    except Unexpected:
        tally.failed[name] += 1
    except gevent.GreenletExit:
        _cut(visit, recorder)
        raise
    finally:
        if account is not None:
            world.give_back(account)
        _close(session)


@dataclass(frozen=True)
class RunArgs:
    think: float = 0.5
    seed: int = 1
    timeout: float = 30.0
    max_in_flight: int = 2000
    drain: float = 30.0


def run(
    host: str,
    world: World,
    shape: Shape,
    args: RunArgs,
    progress: Callable[[float, Tally, Recorder, int], None] | None = None,
) -> tuple[float, float, Tally, Recorder]:
    """Run the arrivals; (first arrival's time, when the last visit ended, tally, samples)."""
    recorder = Recorder()
    hook = EventHook()
    hook.add_listener(recorder)
    tally = Tally(scheduled=shape.expected())
    pool = gevent.pool.Pool(args.max_in_flight)
    start = time.time() + 0.2
    recorder.recording = True

    def report() -> None:
        while True:
            if progress is not None:
                progress(time.time() - start, tally, recorder, len(pool))
            gevent.sleep(0.5)

    reporter = gevent.spawn(report)
    try:
        for index, offset in enumerate(shape.arrivals()):
            at = start + offset
            wait = at - time.time()
            if wait > 0:
                gevent.sleep(wait)
            else:
                tally.scheduler_lag_max = max(tally.scheduler_lag_max, -wait)
            if pool.full():
                tally.dropped += 1
                continue
            pool.spawn(_visit, world, host, hook, tally, index, at, args, recorder)
        pool.join(timeout=args.drain)
        tally.cut = len(pool)
        pool.kill(timeout=5)
    finally:
        recorder.recording = False
        reporter.kill()
    if progress is not None:
        progress(time.time() - start, tally, recorder, 0)
    return start, time.time(), tally, recorder
