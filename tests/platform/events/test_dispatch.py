"""Delivery: racing dispatchers, retries with backoff, failure, resubmit, timeouts, fencing."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

from fastapi import FastAPI
from prometheus_client import REGISTRY as METRICS
from sqlalchemy import text

from app.main import create_app
from app.platform.events import Delivery, ListenerRegistry, Retry, publish
from app.platform.events.admin import Filters, list_failed, resubmit
from app.platform.events.dispatcher import Dispatcher
from app.platform.observability.context import current_scope
from app.platform.web.sessions import PrimarySession
from tests.helpers import make_settings, serving, wait_for
from tests.platform.events.conftest import (
    Probe,
    ProbeHappened,
    effect_listener,
    fast_policy,
    record_effect,
    running,
)
from tools.pgstack import Stack


def _deliveries(listener: str, outcome: str) -> float:
    labels = {"listener": listener, "outcome": outcome}
    return METRICS.get_sample_value("event_deliveries_total", labels) or 0.0


async def test_500_events_4_dispatchers_each_pair_delivered_once(probe: Probe) -> None:
    names = [probe.listener("first"), probe.listener("second")]
    # One registry per dispatcher, same listener names: the side effect says who delivered.
    registries = []
    for worker in range(4):
        registry = ListenerRegistry()
        for name in names:
            registry.subscribe(ProbeHappened, effect_listener(f"w{worker}"), name=name)
        registries.append(registry)
    dispatchers = [
        Dispatcher(probe.settings, r, policy=fast_policy(concurrency=8), name=f"race-{i}")
        for i, r in enumerate(registries)
    ]
    async with running(*dispatchers):
        event_ids: list[object] = []
        for start in range(0, 500, 50):  # published while the dispatchers run
            event_ids += await probe.publish(registries[0], range(start, start + 50))

        async def all_done() -> bool:
            counts = [await probe.statuses(n) for n in names]
            return all(c == {"done": 500} for c in counts)

        await wait_for(all_done, timeout=60, interval=0.2)
    for name in names:
        effects = await probe.effects(name)
        per_event = Counter(event_id for event_id, _ in effects)
        assert len(per_event) == 500, name
        assert set(per_event.values()) == {1}, name
        assert set(per_event) == set(event_ids)
    workers = await probe.scalar(
        "SELECT count(DISTINCT worker) FROM test_event_effect WHERE listener = ANY(:names)",
        names=names,
    )
    assert isinstance(workers, int)
    assert workers >= 2, "the dispatchers did not share the work"


async def test_failing_listener_backs_off_fails_and_resubmit_delivers(
    probe: Probe, migrated: Stack
) -> None:
    healthy, broken = probe.listener("healthy"), probe.listener("broken")
    attempts_at: list[float] = []
    fixed = False

    async def flaky(event: ProbeHappened, delivery: Delivery) -> None:
        attempts_at.append(time.monotonic())
        await record_effect(delivery, event.seq)  # rolled back while the listener is broken
        if not fixed:
            raise RuntimeError("listener bug")

    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, effect_listener(), name=healthy)
    registry.subscribe(ProbeHappened, flaky, name=broken)

    app = _publishing_app(probe, migrated, registry)
    policy = fast_policy(max_attempts=3, backoff_base_seconds=0.2)
    async with serving(app, raise_app_exceptions=True) as client:
        async with running(Dispatcher(probe.settings, registry, policy=policy)):
            response = await client.post("/probe")
            assert response.status_code == 201, response.text
            await wait_for(lambda: _status(probe, broken, "failed"), timeout=20)
            # The healthy listener was delivered once, and never again for the broken one.
            await asyncio.sleep(0.3)
            assert len(await probe.effects(healthy)) == 1
            assert await probe.statuses(healthy) == {"done": 1}

        failed = await probe.delivery(broken)
        assert failed["attempts"] == 3
        assert "RuntimeError: listener bug" in str(failed["last_error"])
        assert await probe.effects(broken) == []
        gaps = [b - a for a, b in itertools.pairwise(attempts_at)]
        # Equal jitter: retry n waits between half and all of base * 2^(n-1).
        assert gaps[0] >= 0.1, gaps
        assert gaps[1] >= 0.2, gaps
        assert _deliveries(broken, "retry") == 2
        assert _deliveries(broken, "failed") == 1
        assert _deliveries(healthy, "delivered") == 1

        async with probe.engine.begin() as conn:
            listed = await list_failed(conn, Filters(listener=broken))
        assert [d.id for d in listed] == [failed["id"]]

        fixed = True
        async with running(Dispatcher(probe.settings, registry, policy=policy)):
            async with probe.engine.begin() as conn:
                assert await resubmit(conn, Filters(listener=broken)) == 1
            await wait_for(lambda: _status(probe, broken, "done"), timeout=10)
        assert len(await probe.effects(broken)) == 1
        assert len(await probe.effects(healthy)) == 1


def _publishing_app(probe: Probe, migrated: Stack, registry: ListenerRegistry) -> FastAPI:
    """The publishing request: an endpoint that publishes in its own transaction."""
    app: FastAPI = create_app(make_settings(migrated, events_dispatcher_enabled=False))

    @app.post("/probe", status_code=201)
    async def publish_probe(session: PrimarySession) -> dict[str, str]:
        event_id = await publish(session, ProbeHappened(seq=1, run=probe.tag), registry=registry)
        return {"event_id": str(event_id)}

    return app


async def _status(probe: Probe, name: str, status: str) -> bool:
    return (await probe.delivery(name))["status"] == status


async def test_hanging_listener_is_cut_at_its_timeout(probe: Probe) -> None:
    name = probe.listener("hangs")
    cancelled = 0

    async def hangs(event: ProbeHappened, delivery: Delivery) -> None:
        nonlocal cancelled
        await record_effect(delivery, event.seq)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, hangs, name=name, timeout_seconds=0.3, max_attempts=2)
    started = time.monotonic()
    async with running(Dispatcher(probe.settings, registry, policy=fast_policy())):
        await probe.publish(registry, [1])
        await wait_for(lambda: _status(probe, name, "failed"), timeout=15)
    assert time.monotonic() - started < 10
    delivery = await probe.delivery(name)
    assert delivery["attempts"] == 2
    assert "timed out after 0.3s" in str(delivery["last_error"])
    assert cancelled == 2
    assert await probe.effects(name) == []  # the cut attempts' work was rolled back


async def test_retry_keeps_the_attempts_work(probe: Probe) -> None:
    name = probe.listener("retry")

    async def retries_once(event: ProbeHappened, delivery: Delivery) -> None:
        await record_effect(delivery, delivery.attempt)
        if delivery.attempt == 1:
            raise Retry("try again later")

    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, retries_once, name=name)
    async with running(Dispatcher(probe.settings, registry, policy=fast_policy())):
        await probe.publish(registry, [1])
        await wait_for(lambda: _status(probe, name, "done"), timeout=10)
    assert sorted(seq for _, seq in await probe.effects(name)) == [1, 2]


async def test_superseded_attempt_does_not_commit(probe: Probe) -> None:
    """An attempt whose lease ran out (and was claimed again) rolls back instead of doubling."""
    name = probe.listener("slow")
    first_started = asyncio.Event()

    async def slow_first(event: ProbeHappened, delivery: Delivery) -> None:
        await record_effect(delivery, delivery.attempt)
        if delivery.attempt == 1:
            first_started.set()
            await asyncio.sleep(1.5)  # past the lease, within the timeout

    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, slow_first, name=name)
    # Lease = timeout + grace = 0.5 s, shorter than the first attempt takes.
    policy = fast_policy(timeout_seconds=3.0, lease_grace_seconds=-2.5)
    first, second = Dispatcher(probe.settings, registry, policy=policy), None
    async with running(first):
        await probe.publish(registry, [1])
        await asyncio.wait_for(first_started.wait(), 10)
        second = Dispatcher(probe.settings, registry, policy=policy, name="second")
        async with running(second):
            await wait_for(lambda: _status(probe, name, "done"), timeout=10)
            await asyncio.sleep(1.5)  # the first attempt finishes and finds itself fenced off
    assert [seq for _, seq in await probe.effects(name)] == [2]
    assert (await probe.delivery(name))["attempts"] == 2


async def test_listener_runs_in_its_modules_observation_scope(probe: Probe) -> None:
    name = probe.listener("scoped")
    scopes: list[tuple[str, str, str]] = []

    async def scoped(event: ProbeHappened, delivery: Delivery) -> None:
        scope = current_scope()
        assert scope is not None
        scopes.append((scope.module, scope.route, scope.kind))

    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, scoped, name=name, module="billingdemo")
    async with running(Dispatcher(probe.settings, registry, policy=fast_policy())):
        await probe.publish(registry, [1])
        await wait_for(lambda: _status(probe, name, "done"), timeout=10)
    assert scopes == [("billingdemo", f"listener:{name}", "event")]


async def test_delivery_metrics_and_outbox_gauges(probe: Probe) -> None:
    fine, stuck = probe.listener("fine"), probe.listener("stuck")

    async def never(event: ProbeHappened, delivery: Delivery) -> None:
        raise RuntimeError("not yet")

    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, effect_listener(), name=fine)
    registry.subscribe(ProbeHappened, never, name=stuck, max_attempts=1000)
    policy = fast_policy(backoff_base_seconds=30.0)
    async with running(Dispatcher(probe.settings, registry, policy=policy)):
        await probe.publish(registry, range(3))

        async def gauges_settled() -> bool:
            pending = METRICS.get_sample_value("outbox_pending", {"listener": stuck})
            done = METRICS.get_sample_value("outbox_pending", {"listener": fine})
            return pending == 3 and done == 0

        await wait_for(gauges_settled, timeout=10)
        await asyncio.sleep(0.3)
        age = METRICS.get_sample_value("outbox_oldest_pending_age_seconds")
        assert age is not None
        assert age > 0.2
    assert _deliveries(fine, "delivered") == 3
    assert _deliveries(stuck, "retry") == 3
    count = METRICS.get_sample_value("event_delivery_duration_seconds_count", {"listener": fine})
    assert count == 3


async def test_notify_wakes_the_dispatcher_without_polling(probe: Probe) -> None:
    name = probe.listener("woken")
    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, effect_listener(), name=name)
    dispatcher = Dispatcher(probe.settings, registry, policy=fast_policy(poll_interval_seconds=60))
    async with running(dispatcher):
        await asyncio.sleep(0.2)  # the dispatcher has gone to sleep for a minute
        started = time.monotonic()
        await probe.publish(registry, [1])
        await wait_for(lambda: probe.effects(name), timeout=10, interval=0.01)
        assert time.monotonic() - started < 2


async def test_polling_delivers_when_listen_is_unavailable(probe: Probe) -> None:
    name = probe.listener("polled")
    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, effect_listener(), name=name)
    dispatcher = Dispatcher(probe.settings, registry, policy=fast_policy(poll_interval_seconds=0.2))
    dispatcher.wakeup.dsn = "postgresql://app:app@127.0.0.1:1/app"  # nothing listens there
    task = asyncio.create_task(dispatcher.run())
    try:
        await probe.publish(registry, [1])
        await wait_for(lambda: probe.effects(name), timeout=10)
        assert not dispatcher.listening.is_set()
    finally:
        dispatcher.stop()
        await task


async def test_prune_deletes_old_done_work_and_keeps_failed(probe: Probe) -> None:
    from datetime import timedelta

    from app.platform.events.admin import prune

    done, failed = probe.listener("old_done"), probe.listener("old_failed")
    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, effect_listener(), name=done)
    registry.subscribe(ProbeHappened, effect_listener(), name=failed)
    (event_id,) = await probe.publish(registry, [1])
    async with probe.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE platform_event_delivery SET finished_at = now() - interval '2 hours',"
                " status = CASE listener WHEN :done THEN 'done' ELSE 'failed' END"
                " WHERE event_id = :id"
            ),
            {"done": done, "id": event_id},
        )
        await conn.execute(
            text(
                "UPDATE platform_outbox_event SET published_at = now() - interval '2 hours'"
                " WHERE id = :id"
            ),
            {"id": event_id},
        )
    async with probe.engine.begin() as conn:
        deleted, _ = await prune(conn, timedelta(hours=1))
    assert deleted >= 1
    assert await probe.statuses(done) == {}
    assert await probe.statuses(failed) == {"failed": 1}
    # The event stays while a delivery of it is kept.
    assert (
        await probe.scalar("SELECT count(*) FROM platform_outbox_event WHERE id = :id", id=event_id)
        == 1
    )
    async with probe.engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM platform_event_delivery WHERE event_id = :id"), {"id": event_id}
        )
        await prune(conn, timedelta(hours=1))
    assert (
        await probe.scalar("SELECT count(*) FROM platform_outbox_event WHERE id = :id", id=event_id)
        == 0
    )
