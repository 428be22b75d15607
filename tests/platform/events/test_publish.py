"""Publishing: rolled back publishes nothing, committed is delivered; events are typed."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest
from prometheus_client import REGISTRY as METRICS

from app.platform.events import Delivery, Event, ListenerRegistry
from app.platform.events.dispatcher import Dispatcher
from tests.helpers import wait_for
from tests.platform.events.conftest import (
    Probe,
    ProbeHappened,
    effect_listener,
    fast_policy,
    running,
)


def _published(name: str) -> float:
    return METRICS.get_sample_value("events_published_total", {"event": name}) or 0.0


async def test_rolled_back_publishes_nothing_committed_is_delivered(probe: Probe) -> None:
    registry = ListenerRegistry()
    name = probe.listener("effect")
    registry.subscribe(ProbeHappened, effect_listener(), name=name)
    before = _published(ProbeHappened.name)
    dispatcher = Dispatcher(probe.settings, registry, policy=fast_policy())
    async with running(dispatcher):
        rolled_back = await probe.publish(registry, [1], commit=False)
        committed = await probe.publish(registry, [2])
        await wait_for(lambda: probe.effects(name), timeout=10)
        # Give a wrongly delivered rollback every chance to show up.
        await asyncio.sleep(0.5)
        assert await probe.effects(name) == [(committed[0], 2)]
    assert (
        await probe.scalar(
            "SELECT count(*) FROM platform_outbox_event WHERE id = :id", id=rolled_back[0]
        )
        == 0
    )
    assert await probe.statuses(name) == {"done": 1}
    assert _published(ProbeHappened.name) == before + 1


async def test_each_listener_gets_its_own_delivery_row(probe: Probe) -> None:
    registry = ListenerRegistry()
    names = [probe.listener("a"), probe.listener("b")]
    for name in names:
        registry.subscribe(ProbeHappened, effect_listener(), name=name)
    (event_id,) = await probe.publish(registry, [7])
    rows = await probe.scalar(
        "SELECT array_agg(listener ORDER BY listener) FROM platform_event_delivery"
        " WHERE event_id = :id AND status = 'pending'",
        id=event_id,
    )
    assert rows == sorted(names)
    payload = await probe.scalar(
        "SELECT payload FROM platform_outbox_event WHERE id = :id", id=event_id
    )
    assert payload == {"seq": 7, "run": probe.tag}


async def test_listener_receives_the_typed_event_and_a_stable_delivery_id(probe: Probe) -> None:
    registry = ListenerRegistry()
    name = probe.listener("typed")
    seen: list[tuple[ProbeHappened, Delivery]] = []
    attempts = 0

    async def handle(event: ProbeHappened, delivery: Delivery) -> None:
        nonlocal attempts
        attempts += 1
        seen.append((event, delivery))
        if attempts == 1:
            raise RuntimeError("first attempt fails")

    registry.subscribe(ProbeHappened, handle, name=name)
    async with running(Dispatcher(probe.settings, registry, policy=fast_policy())):
        (event_id,) = await probe.publish(registry, [3])
        await wait_for(lambda: _status_is(probe, name, "done"), timeout=10)
    assert [type(e) for e, _ in seen] == [ProbeHappened, ProbeHappened]
    assert seen[0][0] == ProbeHappened(seq=3, run=probe.tag)
    assert seen[0][1].id == seen[1][1].id  # the same delivery id on every attempt
    assert [d.attempt for _, d in seen] == [1, 2]
    assert {d.event_id for _, d in seen} == {event_id}


async def _status_is(probe: Probe, name: str, status: str) -> bool:
    return (await probe.delivery(name))["status"] == status


def test_events_must_name_themselves() -> None:
    with pytest.raises(TypeError, match="ClassVar name"):

        class Nameless(Event):
            value: int

    class Named(Event):
        name: ClassVar[str] = "tests.named"
        value: int

    event = Named(value=1)
    with pytest.raises(ValueError, match="frozen"):
        event.value = 2  # type: ignore[misc]


def test_one_listener_name_cannot_serve_two_event_types() -> None:
    class Other(Event):
        name: ClassVar[str] = "tests.other"

    registry = ListenerRegistry()
    registry.subscribe(ProbeHappened, effect_listener(), name="tests.one")
    registry.subscribe(ProbeHappened, effect_listener(), name="tests.one")  # replaces
    assert len(registry.listeners_for(ProbeHappened)) == 1
    with pytest.raises(ValueError, match="already subscribed"):
        registry.subscribe(Other, effect_listener(), name="tests.one")  # type: ignore[arg-type]
