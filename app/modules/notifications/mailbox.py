"""Development mail capture: what the app emailed an address, read back over HTTP.

A load test or a demo signs up, then needs the verification link the app just emailed. The
console backend writes it to the server's log and the memory backend keeps it in one process, so
neither reaches a client on another machine or a server with several workers. Every email the
app sends is already recorded in this module's tables (the notification's text, a ``sent``
delivery attempt naming the recipient), so this reads them back whatever the backend.

Mounted only with ``APP_ENV=development|test|workshop`` (``app/bootstrap.py``), and it refuses
any other environment again at request time: a captured link is a credential.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from app.modules.notifications.models import DeliveryAttempt, Notification, Recipient
from app.platform.errors import NotFound
from app.platform.faults import ALLOWED_ENVIRONMENTS
from app.platform.web.sessions import PrimarySession

router = APIRouter(prefix="/dev", tags=["development"], include_in_schema=False)


class CapturedEmail(BaseModel):
    to: str
    template: str
    subject: str
    text: str
    sent_at: datetime


class Mailbox(BaseModel):
    items: list[CapturedEmail]


@router.get("/mailbox")
async def mailbox(
    request: Request,
    session: PrimarySession,
    to: Annotated[str, Query(min_length=3, max_length=320, description="the recipient")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> Mailbox:
    """The emails sent to ``to``, newest first (development, test and workshop only)."""
    if request.app.state.settings.env not in ALLOWED_ENVIRONMENTS:
        raise NotFound("No such page")
    # From the address to its user (this module's own copy), then that user's inbox index and
    # the attempts of each notification: no scan of the delivery attempts.
    rows = await session.execute(
        select(Notification.template, Notification.subject, Notification.body, DeliveryAttempt)
        .join(Recipient, Recipient.user_id == Notification.user_id)
        .join(DeliveryAttempt, DeliveryAttempt.notification_id == Notification.id)
        .where(
            Recipient.email == to,
            DeliveryAttempt.recipient == to,
            DeliveryAttempt.channel == "email",
            DeliveryAttempt.status == "sent",
        )
        .order_by(Notification.created_at.desc())
        .limit(limit)
    )
    return Mailbox(
        items=[
            CapturedEmail(
                to=to, template=template, subject=subject, text=body, sent_at=a.attempted_at
            )
            for template, subject, body, a in rows
        ]
    )
