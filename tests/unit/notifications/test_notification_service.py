"""notifications' use cases against an in-memory repository and the in-memory email sender."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from app.modules.notifications.models import Notification
from app.modules.notifications.senders import MemoryEmailSender
from app.modules.notifications.service import EmailNotSent, NotificationService
from app.platform.db.read_session import AsyncReadSession
from app.platform.errors import NotFound, ValidationFailed
from tests.unit.fakes import Clock, FakeSession

USER = uuid.UUID(int=7)


@dataclass
class Attempt:
    notification_id: uuid.UUID
    recipient: str | None
    backend: str
    status: str
    detail: str | None


@dataclass
class MemoryNotifications:
    """notifications' queries over lists (the ``NotificationsRepository`` port)."""

    clock: Clock = field(default_factory=Clock)
    rows: list[Notification] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    prefs: dict[tuple[uuid.UUID, str], bool] = field(default_factory=dict)
    recipients: dict[uuid.UUID, str] = field(default_factory=dict)

    async def add_notification(
        self,
        session: AsyncReadSession,
        *,
        user_id: uuid.UUID,
        template: str,
        subject: str,
        body: str,
        source_key: str | None,
    ) -> tuple[Notification, bool]:
        found = [n for n in self.rows if source_key is not None and n.source_key == source_key]
        if found:
            return found[0], False
        self.clock.advance(seconds=1)
        row = Notification(
            id=uuid.uuid4(),
            user_id=user_id,
            template=template,
            subject=subject,
            body=body,
            source_key=source_key,
            created_at=self.clock(),
        )
        self.rows.append(row)
        return row, True

    async def email_already_sent(
        self, session: AsyncReadSession, notification_id: uuid.UUID
    ) -> bool:
        return any(
            a.notification_id == notification_id and a.status == "sent" for a in self.attempts
        )

    async def add_attempt(
        self,
        session: AsyncReadSession,
        *,
        notification_id: uuid.UUID,
        channel: str,
        recipient: str | None,
        backend: str,
        status: str,
        detail: str | None = None,
    ) -> None:
        self.attempts.append(Attempt(notification_id, recipient, backend, status, detail))

    async def page_for_user(
        self,
        session: AsyncReadSession,
        user_id: uuid.UUID,
        *,
        unread_only: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Notification]:
        mine = [n for n in self.rows if n.user_id == user_id]
        mine = [n for n in mine if not unread_only or n.read_at is None]
        mine.sort(key=lambda n: (n.created_at, n.id), reverse=True)
        return [n for n in mine if after is None or (n.created_at, n.id) < after][:limit]

    async def count_unread(self, session: AsyncReadSession, user_id: uuid.UUID) -> int:
        return sum(1 for n in self.rows if n.user_id == user_id and n.read_at is None)

    async def mark_read(
        self, session: AsyncReadSession, notification_id: uuid.UUID, user_id: uuid.UUID
    ) -> Notification | None:
        for n in self.rows:
            if n.id == notification_id and n.user_id == user_id:
                n.read_at = n.read_at or self.clock()
                return n
        return None

    async def mark_all_read(self, session: AsyncReadSession, user_id: uuid.UUID) -> int:
        unread = [n for n in self.rows if n.user_id == user_id and n.read_at is None]
        for n in unread:
            n.read_at = self.clock()
        return len(unread)

    async def preferences(self, session: AsyncReadSession, user_id: uuid.UUID) -> dict[str, bool]:
        return {c: on for (u, c), on in self.prefs.items() if u == user_id}

    async def email_enabled(
        self, session: AsyncReadSession, user_id: uuid.UUID, category: str
    ) -> bool:
        return self.prefs.get((user_id, category), True)

    async def set_preferences(
        self, session: AsyncReadSession, user_id: uuid.UUID, email: dict[str, bool]
    ) -> None:
        for category, on in email.items():
            self.prefs[(user_id, category)] = on

    async def remember_recipient(
        self, session: AsyncReadSession, user_id: uuid.UUID, email: str
    ) -> None:
        self.recipients[user_id] = email

    async def recipient_email(self, session: AsyncReadSession, user_id: uuid.UUID) -> str | None:
        return self.recipients.get(user_id)


@pytest.fixture
def repo() -> MemoryNotifications:
    return MemoryNotifications()


@pytest.fixture
def sender() -> MemoryEmailSender:
    return MemoryEmailSender()


@pytest.fixture
def service(repo: MemoryNotifications, sender: MemoryEmailSender) -> NotificationService:
    return NotificationService(FakeSession().as_session(), sender=sender, repo=repo)


async def _welcome(service: NotificationService, source_key: str | None = "k1") -> str:
    notified = await service.notify(
        user_id=USER,
        template="welcome",
        context={"name": "Ada"},
        email="ada@example.com",
        source_key=source_key,
    )
    return notified.email


async def test_a_notification_is_emailed_once_per_source_key(
    service: NotificationService, repo: MemoryNotifications, sender: MemoryEmailSender
) -> None:
    assert await _welcome(service) == "sent"
    assert await _welcome(service) == "already_sent"
    assert len(repo.rows) == 1
    assert [e.to for e in sender.sent] == ["ada@example.com"]
    assert sender.sent[0].message_id == f"<{repo.rows[0].id}@notifications.invalid>"
    assert [a.status for a in repo.attempts] == ["sent"]


async def test_a_failed_send_keeps_the_notification_and_records_the_attempt(
    service: NotificationService, repo: MemoryNotifications, sender: MemoryEmailSender
) -> None:
    sender.fail_next = 1
    with pytest.raises(EmailNotSent, match="ConnectionError"):
        await _welcome(service)
    assert len(repo.rows) == 1
    assert [(a.status, a.backend) for a in repo.attempts] == [("failed", "memory")]
    assert await _welcome(service) == "sent"  # the retry finds the notification, sends once
    assert len(repo.rows) == 1


async def test_an_optional_email_turned_off_is_skipped_but_still_in_the_inbox(
    service: NotificationService, repo: MemoryNotifications, sender: MemoryEmailSender
) -> None:
    await service.set_preferences(USER, {"product_updates": False})
    notified = await service.notify(
        user_id=USER,
        template="product_update",
        context={"headline": "New", "summary": "Things"},
        email="ada@example.com",
    )
    assert notified.email == "skipped"
    assert sender.sent == []
    assert [a.detail for a in repo.attempts] == ["product_updates turned off"]
    assert (await service.preferences(USER)) == {"product_updates": False}


async def test_unknown_preference_categories_are_refused_by_name(
    service: NotificationService,
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await service.set_preferences(USER, {"spam": True, "product_updates": True})
    assert [e["field"] for e in refused.value.extensions["errors"]] == ["email.spam"]


async def test_the_inbox_pages_newest_first_and_counts_unread(
    service: NotificationService, repo: MemoryNotifications
) -> None:
    for n in range(3):
        await _welcome(service, source_key=f"k{n}")
    first = await service.inbox(USER, unread_only=False, after=None, limit=2)
    assert [n.source_key for n in first.items] == ["k2", "k1"]
    assert first.unread_count == 3
    rest = await service.inbox(USER, unread_only=False, after=first.next_after, limit=2)
    assert [n.source_key for n in rest.items] == ["k0"]
    assert rest.next_after is None
    await service.mark_read(USER, first.items[0].id)
    unread = await service.inbox(USER, unread_only=True, after=None, limit=10)
    assert [n.source_key for n in unread.items] == ["k1", "k0"]
    assert unread.unread_count == 2


async def test_someone_elses_notification_is_not_found(
    service: NotificationService, repo: MemoryNotifications
) -> None:
    await _welcome(service)
    with pytest.raises(NotFound):
        await service.mark_read(uuid.UUID(int=8), repo.rows[0].id)
    assert await service.mark_all_read(USER) == 1
    assert await service.mark_all_read(USER) == 0
