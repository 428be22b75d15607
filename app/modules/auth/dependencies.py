"""auth's FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.modules.auth.passwords import Passwords
from app.modules.auth.service import AuthPorts, AuthService, UsersReader
from app.platform.config import Settings
from app.platform.ratelimit import Network, RateLimiter, client_address, parse_networks
from app.platform.web.sessions import PrimarySession, ReadSession


def _passwords(request: Request) -> Passwords:
    # One hasher per app: its bound on concurrent hashes is the process's.
    state = request.app.state
    if getattr(state, "auth_passwords", None) is None:
        state.auth_passwords = Passwords(state.settings)
    passwords: Passwords = state.auth_passwords
    return passwords


def _ports(request: Request) -> AuthPorts:
    # Bound by the composition root (app/bootstrap.py); an app built without it gets the defaults.
    ports: AuthPorts = getattr(request.app.state, "auth_ports", None) or AuthPorts()
    return ports


def _service(request: Request, session: PrimarySession) -> AuthService:
    settings: Settings = request.app.state.settings
    db = request.app.state.db
    return AuthService(
        session,
        settings,
        _passwords(request),
        RateLimiter(db.primary),
        sessions=db.session,
        ports=_ports(request),
    )


async def _reader(session: ReadSession) -> UsersReader:
    return UsersReader(session)


def _trusted_proxies(request: Request) -> tuple[Network, ...]:
    state = request.app.state
    if getattr(state, "auth_trusted_proxies", None) is None:
        state.auth_trusted_proxies = parse_networks(state.settings.trusted_proxies)
    trusted: tuple[Network, ...] = state.auth_trusted_proxies
    return trusted


def client_ip(request: Request) -> str:
    """The client's address: the TCP peer, or what a trusted proxy says it forwarded."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), _trusted_proxies(request))


Auth = Annotated[AuthService, Depends(_service)]
Users = Annotated[UsersReader, Depends(_reader)]
ClientIp = Annotated[str, Depends(client_ip)]
