"""Event batches with an Idempotency-Key: a retried batch is stored once and answered the same."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import text

from app.modules.analytics import service
from app.platform.config import Settings
from tests.helpers import wait_for
from tests.modules.analytics.conftest import bearer

URL = "/v1/analytics/events"


def _batch(anon: str, n: int = 3, path: str = "/pricing") -> dict[str, Any]:
    return {"anonymous_id": anon, "events": [{"type": "page_view", "path": path}] * n}


async def _stored(
    app: FastAPI, *, anonymous_id: str | None = None, user_id: uuid.UUID | None = None
) -> int:
    async with app.state.db.session() as s:
        count = await s.scalar(
            text(
                "SELECT count(*) FROM analytics_event WHERE anonymous_id IS NOT DISTINCT FROM :a "
                "AND user_id IS NOT DISTINCT FROM :u"
            ),
            {"a": anonymous_id, "u": user_id},
        )
    return int(count or 0)


def _page_views() -> float:
    return REGISTRY.get_sample_value("analytics_events_total", {"type": "page_view"}) or 0.0


async def test_a_retried_batch_is_stored_once_and_answered_the_same(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon, key = f"anon-{uuid.uuid4()}", str(uuid.uuid4())
    counted = _page_views()
    first = await client.post(URL, json=_batch(anon), headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    await wait_for(lambda: _now(_page_views() == counted + 3))
    # The retry: the same body, spelled differently (spacing), after the first was stored.
    body = (
        f'{{ "events": [{{"type":"page_view","path":"/pricing"}},'
        f'{{"path":"/pricing","type":"page_view"}}, {{"type":"page_view", "path":"/pricing"}}],'
        f' "anonymous_id" : "{anon}" }}'
    )
    retries = [
        await client.post(
            URL, content=body, headers={"Idempotency-Key": key, "Content-Type": "application/json"}
        )
        for _ in range(2)
    ]
    for retry in retries:
        assert retry.status_code == 202, retry.text
        assert retry.json() == first.json() == {"accepted": 3}
        assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _stored(app, anonymous_id=anon) == 3
    assert _page_views() == counted + 3  # a replay is not counted as stored events


async def test_concurrent_retries_store_the_batch_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon, key = f"anon-{uuid.uuid4()}", str(uuid.uuid4())
    responses = await asyncio.gather(
        *(
            client.post(URL, json=_batch(anon, 4), headers={"Idempotency-Key": key})
            for _ in range(6)
        )
    )
    assert [r.status_code for r in responses] == [202] * 6
    assert all(r.json() == {"accepted": 4} for r in responses)
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 5
    assert await _stored(app, anonymous_id=anon) == 4


async def test_the_same_key_with_another_body_is_a_422_problem_and_stores_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon, key = f"anon-{uuid.uuid4()}", str(uuid.uuid4())
    headers = {"Idempotency-Key": key}
    assert (await client.post(URL, json=_batch(anon, 2), headers=headers)).status_code == 202
    other = await client.post(URL, json=_batch(anon, 2, path="/other"), headers=headers)
    assert other.status_code == 422, other.text
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert await _stored(app, anonymous_id=anon) == 2


async def test_keys_belong_to_their_caller(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    key = str(uuid.uuid4())
    one, two = f"anon-{uuid.uuid4()}", f"anon-{uuid.uuid4()}"
    user = uuid.uuid4()
    signed_in = {"Idempotency-Key": key, **bearer(settings, "member", user_id=user)}
    for body, headers in (
        (_batch(one), {"Idempotency-Key": key}),
        (_batch(two), {"Idempotency-Key": key}),
        ({"events": _batch(one)["events"]}, signed_in),
    ):
        response = await client.post(URL, json=body, headers=headers)
        assert response.status_code == 202, response.text
        assert "idempotent-replayed" not in response.headers
    assert await _stored(app, anonymous_id=one) == 3
    assert await _stored(app, anonymous_id=two) == 3
    assert await _stored(app, user_id=user) == 3


async def test_without_a_key_every_batch_is_stored(client: httpx.AsyncClient, app: FastAPI) -> None:
    anon = f"anon-{uuid.uuid4()}"
    for _ in range(2):
        assert (await client.post(URL, json=_batch(anon))).status_code == 202
    assert await _stored(app, anonymous_id=anon) == 6


async def test_a_malformed_key_is_a_400_problem_and_stores_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon = f"anon-{uuid.uuid4()}"
    for bad in ("has space", "x" * 256, "tab\there"):
        response = await client.post(URL, json=_batch(anon), headers={"Idempotency-Key": bad})
        assert response.status_code == 400, response.text
        assert response.json()["type"] == "/problems/idempotency-key-invalid"
    assert await _stored(app, anonymous_id=anon) == 0


async def test_a_refused_batch_keeps_its_key_free_for_the_corrected_batch(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon, key = f"anon-{uuid.uuid4()}", str(uuid.uuid4())
    headers = {"Idempotency-Key": key}
    bad = {"anonymous_id": anon, "events": [{"type": "page_view"}]}  # no path
    assert (await client.post(URL, json=bad, headers=headers)).status_code == 422
    fixed = await client.post(URL, json=_batch(anon, 1), headers=headers)
    assert fixed.status_code == 202, fixed.text
    assert "idempotent-replayed" not in fixed.headers
    assert await _stored(app, anonymous_id=anon) == 1


async def test_an_expired_key_is_a_new_batch_and_the_purge_takes_expired_keys_in_batches(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon = f"anon-{uuid.uuid4()}"
    keys = [f"expiring-{uuid.uuid4()}" for _ in range(3)]
    for key in keys:
        headers = {"Idempotency-Key": key}
        assert (await client.post(URL, json=_batch(anon, 1), headers=headers)).status_code == 202
    async with app.state.db.session() as s:
        await s.execute(
            text(
                "UPDATE analytics_batch_key SET expires_at = now() - interval '1 second' "
                "WHERE scope = :scope"
            ),
            {"scope": f"anon:{anon}"},
        )
        await s.commit()
    # Expired: the same key with another body is a new batch, stored.
    again = await client.post(
        URL, json=_batch(anon, 2, path="/new"), headers={"Idempotency-Key": keys[0]}
    )
    assert again.status_code == 202, again.text
    assert "idempotent-replayed" not in again.headers
    assert await _stored(app, anonymous_id=anon) == 3 + 2

    async def live_keys() -> int:
        async with app.state.db.session() as s:
            n = await s.scalar(
                text("SELECT count(*) FROM analytics_batch_key WHERE scope = :scope"),
                {"scope": f"anon:{anon}"},
            )
        return int(n or 0)

    # The two still expired go, at most `limit` a call; the renewed key stays.
    purged = []
    async with app.state.db.session() as s:
        while deleted := await service.IngestionService(s).purge_expired_keys(limit=1):
            purged.append(deleted)
            await s.commit()
    assert purged
    assert set(purged) == {1}
    assert len(purged) >= 2
    assert await live_keys() == 1


async def _now(value: bool) -> bool:
    return value
