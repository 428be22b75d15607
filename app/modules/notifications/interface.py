"""The public surface of the notifications module: the only file other modules may import.

Another module asks for a notification by publishing ``NotificationRequested`` in the transaction
of its own change, giving the recipient (the user id and, for email, the address): this module
keeps no copy of users or their addresses.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import EmailStr, Field

from app.platform.events import Event

TemplateName = Literal[
    "welcome",
    "message",
    "product_update",
    "verify_email",
    "password_reset",
    "order_receipt",
    "payment_failed",
    "refund_issued",
]
ContextValue = str | int | float | bool | None


class NotificationRequested(Event):
    """Notify a user: an entry in their inbox and, when ``email`` is given, an email.

    Emails of an optional template (``product_update``) respect the user's preferences.
    """

    name: ClassVar[str] = "notifications.requested"
    version: ClassVar[int] = 1

    user_id: uuid.UUID
    template: TemplateName
    email: EmailStr | None = None
    context: dict[str, ContextValue] = Field(default_factory=dict)


__all__ = ["ContextValue", "NotificationRequested", "TemplateName"]
