"""The public surface of the auth module: the only file other modules may import.

Events that auth publishes through the outbox. They carry what a listener needs to act without
calling back into auth (the notifications module sends the emails from them).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from app.platform.events import Event


class UserSignedUp(Event):
    """A new account exists; its owner must confirm the address with ``verification_url``."""

    name: ClassVar[str] = "auth.user_signed_up"
    user_id: uuid.UUID
    email: str
    verification_url: str
    expires_at: datetime


class EmailVerified(Event):
    name: ClassVar[str] = "auth.email_verified"
    user_id: uuid.UUID
    email: str


class PasswordResetRequested(Event):
    """Someone asked to reset this account's password; the link goes to the account's address."""

    name: ClassVar[str] = "auth.password_reset_requested"
    user_id: uuid.UUID
    email: str
    reset_url: str
    expires_at: datetime


class PasswordResetAsked(Event):
    """Someone asked for a reset link for ``email``, known or not: auth's own listener acts on it.

    The request only records this, so it does the same work for every address.
    """

    name: ClassVar[str] = "auth.password_reset_asked"
    email: str


class AccountDeleted(Event):
    """The account is gone (its owner deleted it): forget what you keep of ``user_id``."""

    name: ClassVar[str] = "auth.account_deleted"
    user_id: uuid.UUID
    email: str


__all__ = [
    "AccountDeleted",
    "EmailVerified",
    "PasswordResetAsked",
    "PasswordResetRequested",
    "UserSignedUp",
]
