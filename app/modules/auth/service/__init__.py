"""auth's use cases: signup, verification, login, refresh rotation, logout, reset, roles, deletion.

Services flush and never commit; the request's unit of work commits. What must survive a failed
request (brute-force counters) goes through the rate limiter's own transaction, and a reused
refresh token revokes its family with an error that commits (``Unauthorized(commit=True)``).
Password hashes run with no pooled connection checked out (docs/auth.md).
"""

from __future__ import annotations

from app.modules.auth.service._common import (
    AuthPorts,
    EmailNotVerified,
    InvalidToken,
    Limits,
    TokenPair,
    normalize_email,
)
from app.modules.auth.service.accounts import AccountsMixin, PasswordResetLinks
from app.modules.auth.service.freshness import principal_is_current
from app.modules.auth.service.sessions import SessionsMixin
from app.modules.auth.service.users import UsersReader


class AuthService(SessionsMixin, AccountsMixin):
    """Every auth use case, on one request's session."""


__all__ = [
    "AuthPorts",
    "AuthService",
    "EmailNotVerified",
    "InvalidToken",
    "Limits",
    "PasswordResetLinks",
    "TokenPair",
    "UsersReader",
    "normalize_email",
    "principal_is_current",
]
