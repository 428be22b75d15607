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


__all__ = ["EmailVerified", "PasswordResetRequested", "UserSignedUp"]
