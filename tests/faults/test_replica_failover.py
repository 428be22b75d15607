"""The replica killed (immediate mode) under 20 concurrent readers, then restarted: readers see
nothing, every answer a success; reads go back to the replica once it is back."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest

from app.platform.config import Settings
from tests.e2e.conftest import Server
from tests.faults.conftest import Load, first_accepting, member_token
from tests.helpers import wait_for
from tools.pgstack import Stack

READERS = 20
KILLS = 2


def _route_counts(metrics: str) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    pattern = re.compile(r"^db_read_route_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)
    for labels, value in pattern.findall(metrics):
        found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[(found["target"], found["reason"])] += int(float(value))
    return counts


@pytest.mark.slow
async def test_replica_killed_and_restarted_under_20_readers_costs_them_nothing(
    stack: Stack, fault_settings: Settings, server_factory: Callable[..., Server]
) -> None:
    server = server_factory(stack)
    auth = {"authorization": f"Bearer {member_token(fault_settings)}"}
    metrics_auth = {"authorization": f"Bearer {fault_settings.metrics_token.get_secret_value()}"}
    requests: dict[str, Callable[[httpx.AsyncClient], Any]] = {
        "products": lambda c: c.get("/v1/products"),
        "search": lambda c: c.get("/v1/products/search", params={"q": "lamp"}),
        "notifications": lambda c: c.get("/v1/notifications", headers=auth),
    }
    limits = httpx.Limits(max_connections=READERS + 5)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as client:

        async def routes() -> Counter[tuple[str, str]]:
            resp = await client.get("/metrics", headers=metrics_auth)
            assert resp.status_code == 200
            return _route_counts(resp.text)

        async def on_replica_since(before: Counter[tuple[str, str]]) -> bool:
            now = await routes()
            return now[("replica", "replica")] - before[("replica", "replica")] >= READERS

        load = Load(client, requests)
        tasks = load.start(READERS)
        kills: list[dict[str, float]] = []
        try:
            for _ in range(KILLS):
                # Readers on the replica first, so the kill lands under reads it is serving.
                start = await routes()
                await wait_for(partial(on_replica_since, start), timeout=60)
                await asyncio.to_thread(stack.replica.stop, "immediate")
                killed = time.monotonic()
                await asyncio.sleep(0.5)  # the readers carry on without it for a while
                restart = asyncio.create_task(asyncio.to_thread(stack.replica.start))
                back = await first_accepting(stack, primary=False)
                await restart
                before = await routes()
                await wait_for(partial(on_replica_since, before), timeout=60)
                kills.append({"killed": killed, "back": back, "routed": time.monotonic()})
        finally:
            await load.stop(tasks)
        final = await routes()

    statuses = Counter((a.name, a.status) for a in load.answers)
    print(f"\nreplica killed {KILLS}x under {READERS} readers: answers {dict(statuses)}")
    print(f"read routes at the end: {dict(final)}")
    for kill in kills:
        print(f"back on the replica {kill['routed'] - kill['back']:.2f}s after it accepted again")
    assert load.transport_errors == []
    failed = [a for a in load.answers if not 200 <= a.status < 300]
    assert failed == [], failed[:10]
    assert len(load.answers) > READERS * KILLS
    # The kills were felt by the app, and hidden: reads fell back to the primary.
    assert final[("primary", "replica_error")] + final[("primary", "replica_unhealthy")] > 0
    assert '"unhandled exception"' not in server.output()
