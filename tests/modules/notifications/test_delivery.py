"""Notifications through the outbox: the in-app dispatcher delivers, emails, records attempts."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text

from app.modules.notifications import repository
from app.modules.notifications.interface import NotificationRequested
from app.modules.notifications.models import Notification
from app.modules.notifications.senders import MemoryEmailSender
from app.modules.notifications.service import NotificationService
from app.platform.config import Settings
from app.platform.events import publish
from tests.helpers import wait_for
from tests.modules.notifications.conftest import bearer


async def _request(app: FastAPI, event: NotificationRequested) -> uuid.UUID:
    async with app.state.db.session() as session:
        event_id = await publish(session, event)
        await session.commit()
    return event_id


async def _attempts(app: FastAPI, user_id: uuid.UUID) -> list[tuple[str, str | None]]:
    async with app.state.db.session() as session:
        notification = await session.scalar(
            select(Notification).where(Notification.user_id == user_id)
        )
        if notification is None:
            return []
        rows = await repository.attempts_for(session, notification.id)
        return [(a.status, a.detail) for a in rows]


async def _delivery_state(app: FastAPI, event_id: uuid.UUID) -> tuple[str, int]:
    async with app.state.db.session() as session:
        row = (
            await session.execute(
                text("SELECT status, attempts FROM platform_event_delivery WHERE event_id = :id"),
                {"id": event_id},
            )
        ).one()
        return row[0], row[1]


async def test_requested_notification_reaches_inbox_and_email(
    notif_app: FastAPI,
    api: httpx.AsyncClient,
    notif_settings: Settings,
    outbox: MemoryEmailSender,
) -> None:
    user = uuid.uuid4()
    await _request(
        notif_app,
        NotificationRequested(
            user_id=user, template="welcome", email="ada@example.com", context={"name": "<Ada>"}
        ),
    )

    async def in_inbox() -> list[dict[str, str]]:
        response = await api.get("/v1/notifications", headers=bearer(notif_settings, user))
        return response.json()["items"] if response.status_code == 200 else []

    (item,) = await wait_for(in_inbox)
    assert item["subject"] == "Welcome, <Ada>!"
    assert item["template"] == "welcome"
    (email,) = outbox.to("ada@example.com")
    assert email.subject == "Welcome, <Ada>!"
    assert "Hello <Ada>," in email.text
    assert "Hello &lt;Ada&gt;," in email.html  # HTML is escaped, plain text is not
    assert "<Ada>" not in email.html
    assert await _attempts(notif_app, user) == [("sent", None)]


async def test_failed_email_is_recorded_and_retried_without_a_second_notification(
    notif_app: FastAPI, outbox: MemoryEmailSender
) -> None:
    user = uuid.uuid4()
    outbox.fail_next = 2
    event_id = await _request(
        notif_app,
        NotificationRequested(
            user_id=user,
            template="message",
            email="grace@example.com",
            context={"title": "Hi", "body": "there"},
        ),
    )

    async def delivered() -> bool:
        return (await _delivery_state(notif_app, event_id))[0] == "done"

    await wait_for(delivered, timeout=15)
    assert await _delivery_state(notif_app, event_id) == ("done", 3)
    attempts = await _attempts(notif_app, user)
    assert [status for status, _ in attempts] == ["failed", "failed", "sent"]
    assert "ConnectionError" in str(attempts[0][1])
    assert len(outbox.to("grace@example.com")) == 1
    async with notif_app.state.db.session() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM notifications_notification WHERE user_id = :u"),
            {"u": user},
        )
    assert count == 1


async def test_optional_email_respects_preferences(
    notif_app: FastAPI,
    api: httpx.AsyncClient,
    notif_settings: Settings,
    outbox: MemoryEmailSender,
) -> None:
    user = uuid.uuid4()
    headers = bearer(notif_settings, user)
    defaults = await api.get("/v1/notifications/preferences", headers=headers)
    assert defaults.status_code == 200, defaults.text
    assert defaults.json()["email"][0]["category"] == "product_updates"
    assert defaults.json()["email"][0]["email_enabled"] is True

    off = await api.put(
        "/v1/notifications/preferences", headers=headers, json={"email": {"product_updates": False}}
    )
    assert off.status_code == 200, off.text
    assert off.json()["email"][0]["email_enabled"] is False
    unknown = await api.put(
        "/v1/notifications/preferences", headers=headers, json={"email": {"spam": True}}
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "email.spam"

    event = NotificationRequested(
        user_id=user,
        template="product_update",
        email="lin@example.com",
        context={"headline": "Dark mode", "summary": "It is here."},
    )
    await _request(notif_app, event)
    attempts = await wait_for(lambda: _attempts(notif_app, user))
    assert attempts == [("skipped", "product_updates turned off")]
    assert outbox.to("lin@example.com") == []

    # A required email is sent whatever the optional preferences say.
    other = uuid.uuid4()
    await _request(
        notif_app,
        NotificationRequested(user_id=other, template="welcome", email="lin2@example.com"),
    )
    assert await wait_for(lambda: _attempts(notif_app, other)) == [("sent", None)]


async def test_notify_is_idempotent_per_source_key(
    notif_app: FastAPI, outbox: MemoryEmailSender
) -> None:
    user = uuid.uuid4()
    async with notif_app.state.db.session() as session:
        service = NotificationService(session, sender=outbox)
        first = await service.notify(
            user_id=user, template="welcome", context={}, email="x@example.com", source_key="k1"
        )
        second = await service.notify(
            user_id=user, template="welcome", context={}, email="x@example.com", source_key="k1"
        )
        await session.commit()
    assert first.created
    assert not second.created
    assert second.notification.id == first.notification.id
    assert (first.email, second.email) == ("sent", "already_sent")
    assert len(outbox.to("x@example.com")) == 1
