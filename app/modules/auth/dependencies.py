"""auth's FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.modules.auth.passwords import Passwords
from app.modules.auth.service import AuthService
from app.platform.config import Settings
from app.platform.db import PrimarySession
from app.platform.ratelimit import RateLimiter


def _passwords(request: Request) -> Passwords:
    # One hasher per app: its dummy hash is computed once, at first use.
    state = request.app.state
    if getattr(state, "auth_passwords", None) is None:
        state.auth_passwords = Passwords(state.settings)
    passwords: Passwords = state.auth_passwords
    return passwords


def _service(request: Request, session: PrimarySession) -> AuthService:
    settings: Settings = request.app.state.settings
    return AuthService(
        session, settings, _passwords(request), RateLimiter(request.app.state.db.primary)
    )


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


Auth = Annotated[AuthService, Depends(_service)]
ClientIp = Annotated[str, Depends(client_ip)]
