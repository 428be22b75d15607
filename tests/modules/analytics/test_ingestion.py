"""POST /v1/analytics/events: a batch is validated whole, stored in one insert, counted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import event, text

from app.platform.config import Settings
from tests.modules.analytics.conftest import bearer

URL = "/v1/analytics/events"


def _count(event_type: str) -> float:
    return REGISTRY.get_sample_value("analytics_events_total", {"type": event_type}) or 0.0


def _good_events() -> list[dict[str, Any]]:
    search_id = str(uuid.uuid4())
    return [
        {"type": "page_view", "path": "/pricing", "properties": {"ref": "ad", "n": [1, 2]}},
        {"type": "search", "search_id": search_id, "query": "  Red   SHOES ", "result_count": 12},
        {
            "type": "search_click",
            "search_id": search_id,
            "product_id": str(uuid.uuid4()),
            "position": 2,
        },
        {"type": "checkout_started", "occurred_at": datetime.now(UTC).isoformat()},
        {"type": "custom", "name": "newsletter.subscribed", "properties": {"plan": "pro"}},
    ]


async def _stored(app: FastAPI, anonymous_id: str) -> list[dict[str, Any]]:
    async with app.state.db.session() as s:
        rows = await s.execute(
            text("SELECT * FROM analytics_event WHERE anonymous_id = :a ORDER BY id"),
            {"a": anonymous_id},
        )
        return [dict(r._mapping) for r in rows]


async def test_a_good_anonymous_batch_is_stored_and_counted(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon = f"anon-{uuid.uuid4()}"
    before = {t: _count(t) for t in ("page_view", "search", "search_click", "custom")}
    events = _good_events()
    response = await client.post(URL, json={"anonymous_id": anon, "events": events})
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 5}

    rows = await _stored(app, anon)
    assert [r["type"] for r in rows] == [
        "page_view",
        "search",
        "search_click",
        "checkout_started",
        "custom",
    ]
    assert all(r["user_id"] is None for r in rows)
    assert rows[0]["path"] == "/pricing"
    assert rows[0]["properties"] == {"ref": "ad", "n": [1, 2]}
    assert rows[1]["query"] == "red shoes"  # normalised for grouping
    assert rows[1]["result_count"] == 12
    assert str(rows[2]["search_id"]) == events[1]["search_id"] == events[2]["search_id"]
    assert rows[2]["position"] == 2
    assert rows[4]["name"] == "newsletter.subscribed"
    assert abs(rows[0]["occurred_at"] - datetime.now(UTC)) < timedelta(minutes=1)

    for t in before:
        assert _count(t) == before[t] + 1


async def test_a_signed_in_batch_carries_the_principals_user_id(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    user_id = uuid.uuid4()
    anon = f"anon-{uuid.uuid4()}"
    response = await client.post(
        URL,
        json={"anonymous_id": anon, "events": [{"type": "page_view", "path": "/"}]},
        headers=bearer(settings, "member", user_id=user_id),
    )
    assert response.status_code == 202
    rows = await _stored(app, anon)
    assert [r["user_id"] for r in rows] == [user_id]


async def test_a_batch_with_one_bad_event_is_refused_whole(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon = f"anon-{uuid.uuid4()}"
    events = _good_events()
    events[3] = {"type": "search", "search_id": "not-a-uuid", "query": "x", "result_count": 1}
    before = _count("page_view")
    response = await client.post(URL, json={"anonymous_id": anon, "events": events})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/validation-error"
    assert body["invalid_indexes"] == [3]
    assert body["errors"] == [
        {"index": 3, "field": "search_id", "reason": body["errors"][0]["reason"]}
    ]
    assert "UUID" in body["errors"][0]["reason"]
    assert await _stored(app, anon) == []
    assert _count("page_view") == before


async def test_every_bad_event_is_named_with_its_reason(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon = f"anon-{uuid.uuid4()}"
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    events: list[dict[str, Any]] = [
        {"type": "page_view", "path": "/ok"},
        {"type": "teleport"},
        {"type": "page_view", "path": "/", "occurred_at": future},
        {"type": "search_click", "search_id": str(uuid.uuid4()), "product_id": str(uuid.uuid4())},
        {"type": "custom", "name": "Bad Name"},
        {"type": "page_view", "path": "x" * 513},
        {"type": "page_view", "path": "/", "extra": 1},
        {"type": "search", "search_id": str(uuid.uuid4()), "query": "   ", "result_count": 0},
        {"type": "page_view", "path": "/", "occurred_at": "2026-01-01T00:00:00"},
    ]
    response = await client.post(URL, json={"anonymous_id": anon, "events": events})
    assert response.status_code == 422
    body = response.json()
    assert body["invalid_indexes"] == [1, 2, 3, 4, 5, 6, 7, 8]
    by_index = {e["index"]: e for e in body["errors"]}
    assert "teleport" in by_index[1]["reason"] or "tag" in by_index[1]["reason"]
    assert by_index[2] == {"index": 2, "field": "occurred_at", "reason": "is in the future"}
    assert by_index[3]["field"] == "position"
    assert by_index[4]["field"] == "name"
    assert by_index[5] == {
        "index": 5,
        "field": "path",
        "reason": "string longer than 512 characters",
    }
    assert by_index[6]["field"] == "extra"
    assert by_index[7] == {"index": 7, "field": "query", "reason": "query is blank"}
    assert by_index[8]["field"] == "occurred_at"  # no time zone
    assert await _stored(app, anon) == []


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"k": "v" * 5000}, "bytes of JSON"),
        ({f"k{i}": i for i in range(51)}, "51 keys"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "nested 5 deep"),
        ({"a": "y" * 600}, "longer than 512"),
    ],
)
async def test_property_limits(
    client: httpx.AsyncClient, app: FastAPI, properties: dict[str, Any], reason: str
) -> None:
    anon = f"anon-{uuid.uuid4()}"
    events = [
        {"type": "page_view", "path": "/"},
        {"type": "custom", "name": "x", "properties": properties},
    ]
    response = await client.post(URL, json={"anonymous_id": anon, "events": events})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {e["index"] for e in errors} == {1}
    assert any(reason in e["reason"] for e in errors), errors
    assert await _stored(app, anon) == []


async def test_non_finite_numbers_are_refused_not_a_500(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    anon = f"anon-{uuid.uuid4()}"
    events = [{"type": "custom", "name": "x", "properties": {"v": "NAN"}}]
    body = json.dumps({"anonymous_id": anon, "events": events}).replace('"NAN"', "NaN")
    response = await client.post(URL, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["reason"] == "number is not finite"
    assert await _stored(app, anon) == []


async def test_too_large_a_batch_is_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    anon = f"anon-{uuid.uuid4()}"
    events = [{"type": "page_view", "path": "/"}] * 501
    response = await client.post(URL, json={"anonymous_id": anon, "events": events})
    assert response.status_code == 422
    assert "at most 500" in response.json()["detail"]
    assert await _stored(app, anon) == []


async def test_an_anonymous_batch_needs_an_anonymous_id(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json={"events": [{"type": "page_view", "path": "/"}]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "anonymous_id"


async def test_an_invalid_token_is_refused_not_treated_as_anonymous(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        URL,
        json={"anonymous_id": "a", "events": [{"type": "page_view", "path": "/"}]},
        headers={"Authorization": "Bearer nonsense"},
    )
    assert response.status_code == 401


@pytest.fixture
def statements(app: FastAPI) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = app.state.db.primary.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def test_a_full_batch_is_one_insert_statement(
    client: httpx.AsyncClient, app: FastAPI, statements: list[str]
) -> None:
    anon = f"anon-{uuid.uuid4()}"
    events = [
        {"type": "search", "search_id": str(uuid.uuid4()), "query": f"q{i}", "result_count": i}
        for i in range(500)
    ]
    payload = json.dumps({"anonymous_id": anon, "events": events})
    response = await client.post(URL, content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 202
    inserts = [s for s in statements if "INSERT INTO analytics_event" in s]
    assert len(inserts) == 1
    assert len(await _stored(app, anon)) == 500
