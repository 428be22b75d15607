"""Lanes: a claimed batch in one transaction, a savepoint per delivery, one commit."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
from sqlalchemy import text

from app.platform.events import Delivery, ListenerRegistry, Retry
from app.platform.events.dispatcher import Dispatcher
from tests.helpers import wait_for
from tests.platform.events.conftest import Probe, ProbeHappened, fast_policy, running

Handler = Callable[[ProbeHappened, Delivery], Awaitable[None]]


async def _record_in_tx(delivery: Delivery, seq: int) -> None:
    """The side effect, tagged with the top-level transaction it ran in (same inside savepoints)."""
    await delivery.session.execute(
        text(
            "INSERT INTO test_event_effect (delivery_id, event_id, listener, seq, worker)"
            " VALUES (:d, :e, :l, :s, txid_current()::text)"
        ),
        {"d": delivery.id, "e": delivery.event_id, "l": delivery.listener, "s": seq},
    )


async def _held_back(probe: Probe, registry: ListenerRegistry, count: int) -> None:
    """Publish a backlog the dispatchers cannot see yet, so they claim it in full batches."""
    await probe.publish(registry, range(count))
    async with probe.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE platform_event_delivery SET available_at = now() + interval '1 day'"
                " WHERE listener = ANY(:names) AND status = 'pending'"
            ),
            {"names": registry.names()},
        )


async def _release(probe: Probe, registry: ListenerRegistry) -> None:
    async with probe.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE platform_event_delivery SET available_at = now()"
                " WHERE listener = ANY(:names) AND status = 'pending'"
            ),
            {"names": registry.names()},
        )
        await conn.execute(text("SELECT pg_notify('platform_outbox', '')"))


async def _effects(probe: Probe, name: str) -> list[tuple[int, str]]:
    async with probe.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT seq, worker FROM test_event_effect WHERE listener = :l ORDER BY n"),
            {"l": name},
        )
        return [(r[0], r[1]) for r in rows]


async def _run_one_lane(
    probe: Probe, name: str, handler: Handler, count: int, **policy: float
) -> None:
    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, handler, name=name, max_attempts=1, **policy)  # type: ignore[arg-type]
    await _held_back(probe, registry, count)
    # One lane that takes the whole backlog in one claim.
    dispatcher = Dispatcher(
        probe.settings, registry, policy=fast_policy(concurrency=1, batch_size=count)
    )
    async with running(dispatcher):
        await _release(probe, registry)

        async def finished() -> bool:
            statuses = await probe.statuses(name)
            return statuses.get("pending", 0) == 0

        await wait_for(finished, timeout=30)


async def test_a_failing_listener_rolls_back_only_its_own_work(probe: Probe) -> None:
    name = probe.listener("lane_fails")
    failing = {3, 7}

    async def handler(event: ProbeHappened, delivery: Delivery) -> None:
        await _record_in_tx(delivery, event.seq)
        if event.seq in failing:
            raise RuntimeError("listener bug")

    await _run_one_lane(probe, name, handler, 10)
    effects = await _effects(probe, name)
    assert sorted(seq for seq, _ in effects) == [s for s in range(10) if s not in failing]
    # The others' work committed together, in one transaction.
    assert len({tx for _, tx in effects}) == 1
    assert await probe.statuses(name) == {"done": 8, "failed": 2}
    async with probe.engine.connect() as conn:
        errors = (
            await conn.execute(
                text(
                    "SELECT last_error FROM platform_event_delivery"
                    " WHERE listener = :l AND status = 'failed'"
                ),
                {"l": name},
            )
        ).scalars()
        assert all("RuntimeError: listener bug" in str(e) for e in errors)


async def test_retry_in_a_lane_keeps_its_work_and_comes_back(probe: Probe) -> None:
    name = probe.listener("lane_retry")

    async def handler(event: ProbeHappened, delivery: Delivery) -> None:
        await _record_in_tx(delivery, event.seq)
        if event.seq % 3 == 0 and delivery.attempt == 1:
            raise Retry("later")

    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, handler, name=name)
    await _held_back(probe, registry, 9)
    dispatcher = Dispatcher(
        probe.settings, registry, policy=fast_policy(concurrency=1, batch_size=9)
    )
    async with running(dispatcher):
        await _release(probe, registry)
        await wait_for(lambda: _all_done(probe, name, 9), timeout=30)
    seqs = Counter(seq for seq, _ in await _effects(probe, name))
    # A retried delivery keeps the work of its first attempt and adds its second's.
    assert seqs == {s: 2 if s % 3 == 0 else 1 for s in range(9)}


@pytest.mark.parametrize("where", ["outside_sql", "inside_sql"])
async def test_a_timed_out_listener_does_not_undo_the_others(probe: Probe, where: str) -> None:
    """Cut while awaiting something else, it rolls back its savepoint and the lane goes on; cut
    in the middle of a statement (the connection is dropped), the lane runs the rest alone."""
    name = probe.listener(f"lane_hangs_{where}")
    cancelled = 0

    async def handler(event: ProbeHappened, delivery: Delivery) -> None:
        nonlocal cancelled
        await _record_in_tx(delivery, event.seq)
        if event.seq == 4:
            try:
                if where == "inside_sql":
                    await delivery.session.execute(text("SELECT pg_sleep(30)"))
                else:
                    await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled += 1
                raise

    await _run_one_lane(probe, name, handler, 10, timeout_seconds=0.5)
    effects = await _effects(probe, name)
    assert sorted(seq for seq, _ in effects) == [s for s in range(10) if s != 4]
    assert await probe.statuses(name) == {"done": 9, "failed": 1}
    assert cancelled == 1
    hung = await probe.scalar(
        "SELECT last_error FROM platform_event_delivery WHERE listener = :l AND status = 'failed'",
        l=name,
    )
    assert "timed out after 0.5s" in str(hung)
    if where == "outside_sql":
        assert len({tx for _, tx in effects}) == 1  # the lane kept its one transaction
    # No statement of the cut attempt is left running on the server.
    still = await probe.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'"
        " AND state = 'active'"
    )
    assert still == 0


async def test_lanes_4_racing_dispatchers_db_side_effects_exactly_once(probe: Probe) -> None:
    names = [probe.listener("lane_race_a"), probe.listener("lane_race_b")]
    rng = random.Random(4)
    flaky = {s for s in range(400) if rng.random() < 0.1}

    def listener(worker: str) -> Handler:
        async def handle(event: ProbeHappened, delivery: Delivery) -> None:
            await _record_in_tx(delivery, event.seq)
            if event.seq in flaky and delivery.attempt == 1:
                raise RuntimeError("first attempt fails")

        return handle

    registries = []
    for worker in range(4):
        registry = ListenerRegistry()
        for name in names:
            registry.subscribe(ProbeHappened, listener(f"w{worker}"), name=name)
        registries.append(registry)
    await _held_back(probe, registries[0], 400)
    dispatchers = [
        Dispatcher(
            probe.settings, r, policy=fast_policy(concurrency=4, batch_size=16), name=f"lane-{i}"
        )
        for i, r in enumerate(registries)
    ]
    async with running(*dispatchers):
        await _release(probe, registries[0])
        for name in names:
            await wait_for(partial(_all_done, probe, name, 400), timeout=90, interval=0.2)
    for name in names:
        effects = await _effects(probe, name)
        per_seq = Counter(seq for seq, _ in effects)
        assert per_seq == dict.fromkeys(range(400), 1), name  # once each, none lost
        per_transaction = Counter(tx for _, tx in effects)
        # How full lanes get depends on timing (a lane that runs long commits early).
        assert len(per_transaction) < len(effects), "the deliveries were not batched"
        assert per_transaction.most_common(1)[0][1] > 1


async def _all_done(probe: Probe, name: str, count: int) -> bool:
    return await probe.statuses(name) == {"done": count}


async def test_a_listeners_statements_carry_its_module(probe: Probe) -> None:
    from prometheus_client import REGISTRY as METRICS

    name, module = probe.listener("lane_metrics"), f"mod{probe.tag}"

    async def handler(event: ProbeHappened, delivery: Delivery) -> None:
        await _record_in_tx(delivery, event.seq)

    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, handler, name=name, module=module)
    await _held_back(probe, registry, 5)
    dispatcher = Dispatcher(
        probe.settings, registry, policy=fast_policy(concurrency=1, batch_size=5)
    )
    async with running(dispatcher):
        await _release(probe, registry)
        await wait_for(lambda: _all_done(probe, name, 5), timeout=30)
    labels = {"module": module, "operation": "insert", "target": "primary"}
    assert METRICS.get_sample_value("db_query_duration_seconds_count", labels) == 5
