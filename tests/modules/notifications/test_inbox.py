"""The in-app inbox over HTTP: own notifications only, pages, unread, read, read-all."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from app.modules.notifications.service import NotificationService
from app.platform.config import Settings
from tests.helpers import max_queries, replica_caught_up, wait_for
from tests.modules.notifications.conftest import bearer


async def _seed(app: FastAPI, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    ids = []
    async with app.state.db.session() as session:
        service = NotificationService(session)
        for i in range(count):
            notified = await service.notify(
                user_id=user_id,
                template="message",
                context={"title": f"Note {i}", "body": f"Body {i}"},
                email=None,
            )
            ids.append(notified.notification.id)
        await session.commit()
    return ids


async def _inbox(
    api: httpx.AsyncClient, headers: dict[str, str], **params: str | int
) -> dict[str, object]:
    response = await api.get("/v1/notifications", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_inbox_pages_through_own_notifications_within_query_budget(
    notif_app: FastAPI, api: httpx.AsyncClient, notif_settings: Settings
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_ids = await _seed(notif_app, alice, 60)
    await _seed(notif_app, bob, 3)
    headers = bearer(notif_settings, alice)

    # Both users' rows were written directly, without a consistency token: wait for the replica.
    await replica_caught_up(notif_app.state.db)
    with max_queries(2):
        first = await _inbox(api, headers, limit=50)
    items = first["items"]
    assert isinstance(items, list)
    assert len(items) == 50
    # Newest first: the reverse of creation order.
    assert [uuid.UUID(i["id"]) for i in items] == alice_ids[::-1][:50]
    assert items[0]["subject"] == "Note 59"
    assert first["next_cursor"]

    second = await _inbox(api, headers, limit=50, cursor=str(first["next_cursor"]))
    rest = second["items"]
    assert isinstance(rest, list)
    assert [uuid.UUID(i["id"]) for i in rest] == alice_ids[::-1][50:]
    assert second["next_cursor"] is None

    bobs = await _inbox(api, bearer(notif_settings, bob))
    assert len(bobs["items"]) == 3  # type: ignore[arg-type]


async def test_read_one_refuses_another_users_notification(
    notif_app: FastAPI, api: httpx.AsyncClient, notif_settings: Settings
) -> None:
    alice, mallory = uuid.uuid4(), uuid.uuid4()
    first, second = await _seed(notif_app, alice, 2)

    stolen = await api.post(
        f"/v1/notifications/{first}/read", headers=bearer(notif_settings, mallory)
    )
    assert stolen.status_code == 404
    assert stolen.headers["content-type"] == "application/problem+json"
    assert stolen.json()["type"].endswith("/not-found")
    missing = await api.post(
        f"/v1/notifications/{uuid.uuid4()}/read", headers=bearer(notif_settings, alice)
    )
    assert missing.status_code == 404

    read = await api.post(f"/v1/notifications/{first}/read", headers=bearer(notif_settings, alice))
    assert read.status_code == 200, read.text
    assert read.json()["id"] == str(first)
    assert read.json()["read_at"] is not None
    again = await api.post(f"/v1/notifications/{first}/read", headers=bearer(notif_settings, alice))
    assert again.json()["read_at"] == read.json()["read_at"]  # read once, not re-stamped

    async def only_second_unread() -> bool:
        page = await _inbox(api, bearer(notif_settings, alice), unread="true")
        items = page["items"]
        assert isinstance(items, list)
        return [i["id"] for i in items] == [str(second)]

    await wait_for(only_second_unread)


async def test_read_all_marks_only_the_callers(
    notif_app: FastAPI, api: httpx.AsyncClient, notif_settings: Settings
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await _seed(notif_app, alice, 4)
    await _seed(notif_app, bob, 2)
    marked = await api.post("/v1/notifications/read-all", headers=bearer(notif_settings, alice))
    assert marked.status_code == 200
    assert marked.json() == {"marked": 4}
    again = await api.post("/v1/notifications/read-all", headers=bearer(notif_settings, alice))
    assert again.json() == {"marked": 0}

    async def settled() -> bool:
        a = await _inbox(api, bearer(notif_settings, alice), unread="true")
        b = await _inbox(api, bearer(notif_settings, bob), unread="true")
        return a["items"] == [] and a["unread_count"] == 0 and b["unread_count"] == 2

    await wait_for(settled)


async def test_inbox_needs_a_token_and_a_real_cursor(
    api: httpx.AsyncClient, notif_settings: Settings
) -> None:
    anonymous = await api.get("/v1/notifications")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    headers = bearer(notif_settings, uuid.uuid4())
    bad = await api.get("/v1/notifications", headers=headers, params={"cursor": "nonsense!"})
    assert bad.status_code == 400
    assert bad.json()["type"] == "/problems/invalid-cursor"
    too_many = await api.get("/v1/notifications", headers=headers, params={"limit": 1000})
    assert too_many.status_code == 422
    not_an_id = await api.post("/v1/notifications/abc/read", headers=headers)
    assert not_an_id.status_code == 422
