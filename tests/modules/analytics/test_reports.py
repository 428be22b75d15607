"""The admin reports: rates computed independently from the test's own rows, the top lists,
window validation and who may read them."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.helpers import max_queries
from tests.modules.analytics.conftest import replica_caught_up
from tools.pgstack import Stack

FUNNEL = "/v1/analytics/reports/funnel"
# Each starts with the admin token's freshness check on the primary (app/platform/security.py).
REPORT_BUDGET = 3  # the freshness check, the transaction's settings, then the report
FUNNEL_BUDGET = 5  # freshness, settings, then signups, checkouts and searches: one query each
TERMS = "/v1/analytics/reports/search-terms"
PRODUCTS = "/v1/analytics/reports/clicked-products"

# Far from every other test's rows (ingestion writes "now"; the seeded tests use their own DB).
START = datetime(2021, 3, 1, tzinfo=UTC)
END = datetime(2021, 3, 4, tzinfo=UTC)

_INSERT_EVENT = text(
    "INSERT INTO analytics_event (type, occurred_at, anonymous_id, search_id, query, "
    "result_count, product_id, position) VALUES (:type, :at, 'report-test', :search_id, :query, "
    ":results, :product_id, :position)"
)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _insert(app: FastAPI, stack: Stack, sql: Any, rows: list[dict[str, Any]]) -> None:
    async with app.state.db.session() as session:
        await session.execute(sql, rows)
        await session.commit()
    await replica_caught_up(stack)


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.random() * (end - start).total_seconds())


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    """The test's own rows, and per day what the report must say about them."""
    rng = random.Random(20210301)
    before, after = START - timedelta(microseconds=1), END  # just outside the window
    signups, checkouts, events = [], [], []
    days: dict[datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def day(at: datetime) -> datetime:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)

    for i in range(90):
        at = _moment(rng, START, END) if i < 80 else rng.choice([before, after])
        verified = at + timedelta(minutes=rng.randint(1, 3000)) if rng.random() < 0.6 else None
        signups.append({"user_id": uuid.uuid4(), "at": at, "verified": verified})
        if START <= at < END:
            days[day(at)]["started"] += 1
            days[day(at)]["verified"] += verified is not None
    for i in range(70):
        at = _moment(rng, START, END) if i < 60 else rng.choice([before, after])
        paid = rng.random() < 0.8
        checkouts.append(
            {"order_id": uuid.uuid4(), "at": at, "outcome": "paid" if paid else "failed"}
        )
        if START <= at < END:
            days[day(at)]["paid" if paid else "failed"] += 1
    for i in range(120):
        at = _moment(rng, START, END) if i < 100 else rng.choice([before, after])
        search_id = uuid.uuid4()
        events.append(
            {"type": "search", "at": at, "search_id": search_id, "query": "q", "results": 3,
             "product_id": None, "position": None}
        )  # fmt: skip
        clicks = rng.choice([0, 0, 1, 2])
        for _ in range(clicks):  # some clicks land after the window: they still count
            events.append(
                {"type": "search_click", "at": at + timedelta(hours=rng.randint(0, 30)),
                 "search_id": search_id, "query": None, "results": None,
                 "product_id": uuid.uuid4(), "position": 1}
            )  # fmt: skip
        if START <= at < END:
            days[day(at)]["searches"] += 1
            days[day(at)]["clicked"] += clicks > 0
    return {"signups": signups, "checkouts": checkouts, "events": events, "days": days}


@pytest.fixture(scope="module")
async def funnel_rows(migrated: Stack, expected: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(migrated.primary_url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO analytics_signup (user_id, signed_up_at, verified_at) "
                "VALUES (:user_id, :at, :verified)"
            ),
            expected["signups"],
        )
        await conn.execute(
            text(
                "INSERT INTO analytics_checkout (order_id, user_id, outcome, amount, currency, at) "
                "VALUES (:order_id, gen_random_uuid(), :outcome, 1000, 'EUR', :at)"
            ),
            expected["checkouts"],
        )
        await conn.execute(_INSERT_EVENT, expected["events"])
    await engine.dispose()
    await replica_caught_up(migrated)
    return expected


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def test_funnel_rates_per_day_match_the_rows(
    client: httpx.AsyncClient, admin_headers: dict[str, str], funnel_rows: dict[str, Any]
) -> None:
    with max_queries(FUNNEL_BUDGET):
        response = await client.get(
            FUNNEL,
            params={"from": _iso(START), "to": _iso(END), "interval": "day"},
            headers=admin_headers,
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from"] == "2021-03-01T00:00:00Z"
    assert set(body["definitions"]) == {
        "signup_completion_rate",
        "checkout_success_rate",
        "search_to_click_ratio",
    }
    assert [b["start"] for b in body["buckets"]] == [
        "2021-03-01T00:00:00Z",
        "2021-03-02T00:00:00Z",
        "2021-03-03T00:00:00Z",
    ]
    days = funnel_rows["days"]
    totals: dict[str, int] = defaultdict(int)
    for bucket in body["buckets"]:
        d = days[datetime.fromisoformat(bucket["start"])]
        for key, value in d.items():
            totals[key] += value
        assert bucket["signups_started"] == d["started"]
        assert bucket["signups_verified"] == d["verified"]
        assert bucket["signup_completion_rate"] == pytest.approx(_rate(d["verified"], d["started"]))
        assert bucket["checkouts_paid"] == d["paid"]
        assert bucket["checkouts_failed"] == d["failed"]
        assert bucket["checkout_success_rate"] == pytest.approx(
            _rate(d["paid"], d["paid"] + d["failed"])
        )
        assert bucket["searches"] == d["searches"]
        assert bucket["searches_clicked"] == d["clicked"]
        assert bucket["search_to_click_ratio"] == pytest.approx(_rate(d["clicked"], d["searches"]))
    t = body["totals"]
    assert (t["signups_started"], t["checkouts_paid"], t["searches"]) == (80, totals["paid"], 100)
    assert t["checkout_success_rate"] == pytest.approx(
        totals["paid"] / (totals["paid"] + totals["failed"])
    )
    assert t["search_to_click_ratio"] == pytest.approx(totals["clicked"] / 100)


async def test_funnel_by_week_and_by_hour(
    client: httpx.AsyncClient, admin_headers: dict[str, str], funnel_rows: dict[str, Any]
) -> None:
    # 2021-02-24 is a Wednesday: the first weekly bucket is clipped to the window.
    params = {"from": "2021-02-24T00:00:00Z", "to": "2021-03-04T00:00:00Z", "interval": "week"}
    body = (await client.get(FUNNEL, params=params, headers=admin_headers)).json()
    assert [(b["start"], b["end"]) for b in body["buckets"]] == [
        ("2021-02-24T00:00:00Z", "2021-03-01T00:00:00Z"),
        ("2021-03-01T00:00:00Z", "2021-03-04T00:00:00Z"),
    ]
    searches = [e for e in funnel_rows["events"] if e["type"] == "search"]
    early = sum(1 for e in searches if e["at"] < START)
    assert early > 0
    assert body["buckets"][0]["searches"] == early
    assert body["buckets"][1]["searches"] == 100

    params = {"from": "2021-03-01T00:00:00Z", "to": "2021-03-02T00:00:00Z", "interval": "hour"}
    body = (await client.get(FUNNEL, params=params, headers=admin_headers)).json()
    assert len(body["buckets"]) == 24
    first = funnel_rows["days"][START]
    assert sum(b["searches"] for b in body["buckets"]) == first["searches"]
    assert sum(b["signups_started"] for b in body["buckets"]) == first["started"]


async def test_top_search_terms_and_most_clicked_products(
    client: httpx.AsyncClient, admin_headers: dict[str, str], app: FastAPI, migrated: Stack
) -> None:
    at = datetime(2021, 4, 1, 10, tzinfo=UTC)
    a, b = uuid.uuid4(), uuid.uuid4()
    rows = []
    for query, results in [("shoes", 5), ("shoes", 0), ("shoes", 9), ("hat", 1), ("hat", 0)]:
        rows.append({"type": "search", "at": at, "search_id": uuid.uuid4(), "query": query,
                     "results": results, "product_id": None, "position": None})  # fmt: skip
    rows.append({"type": "search", "at": at, "search_id": uuid.uuid4(), "query": "lamp",
                 "results": 2, "product_id": None, "position": None})  # fmt: skip
    for product, position in [(a, 1), (a, 1), (a, 2), (a, 4), (b, 3), (b, 5)]:
        rows.append({"type": "search_click", "at": at, "search_id": uuid.uuid4(), "query": None,
                     "results": None, "product_id": product, "position": position})  # fmt: skip
    await _insert(app, migrated, _INSERT_EVENT, rows)
    window = {"from": "2021-04-01T00:00:00Z", "to": "2021-04-02T00:00:00Z"}

    # Query budget: the transaction's settings, then one query per report, whatever the rows.
    with max_queries(REPORT_BUDGET):
        response = await client.get(TERMS, params={**window, "limit": 2}, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["terms"] == [
        {"term": "shoes", "searches": 3, "zero_result_searches": 1},
        {"term": "hat", "searches": 2, "zero_result_searches": 1},
    ]
    with max_queries(REPORT_BUDGET):
        response = await client.get(PRODUCTS, params=window, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["products"] == [
        {"product_id": str(a), "clicks": 4, "mean_position": 2.0},
        {"product_id": str(b), "clicks": 2, "mean_position": 4.0},
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2021-03-02T00:00:00Z", "to": "2021-03-01T00:00:00Z"}, "from"),
        ({"from": "2021-03-01T00:00:00Z", "to": "2021-03-01T00:00:00Z"}, "from"),
        ({"from": "2021-01-01T00:00:00Z", "to": "2021-06-01T00:00:00Z"}, "to"),
        ({"from": "2021-03-01T00:00:00Z", "to": "2021-03-02T00:00:00Z", "interval": "month"}, None),
        ({"from": "2021-03-01T00:00:00", "to": "2021-03-02T00:00:00Z"}, None),
        ({"from": "yesterday", "to": "2021-03-02T00:00:00Z"}, None),
        ({"to": "2021-03-02T00:00:00Z"}, None),
    ],
)
async def test_invalid_windows_are_422_problems(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    params: dict[str, str],
    field: str | None,
) -> None:
    response = await client.get(FUNNEL, params=params, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/validation-error"
    if field:
        assert body["errors"][0]["field"] == field


async def test_too_many_hourly_buckets_is_a_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    params = {"from": "2021-01-01T00:00:00Z", "to": "2021-03-01T00:00:00Z", "interval": "hour"}
    response = await client.get(FUNNEL, params=params, headers=admin_headers)
    assert response.status_code == 422
    assert "coarser" in response.json()["detail"]


@pytest.mark.parametrize("url", [FUNNEL, TERMS, PRODUCTS])
async def test_reports_are_for_admins_only(
    client: httpx.AsyncClient, member_headers: dict[str, str], url: str
) -> None:
    params = {"from": _iso(START), "to": _iso(END)}
    assert (await client.get(url, params=params)).status_code == 401
    assert (await client.get(url, params=params, headers=member_headers)).status_code == 403
