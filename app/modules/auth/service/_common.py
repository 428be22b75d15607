"""What auth's use cases share: token digests, limits, errors, the service's collaborators."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.modules.auth.passwords import Passwords
from app.modules.auth.repository import AuthRepository
from app.platform.config import Settings
from app.platform.errors import AppError
from app.platform.events import EventSink, Outbox
from app.platform.ports import Clock, IdSource, random_ids, system_clock
from app.platform.ratelimit import Limit, RateLimiter
from app.platform.security import ROLE_ADMIN, ROLE_MEMBER


class InvalidToken(AppError):
    status, slug, title = 400, "invalid-token", "Invalid or expired token"


class EmailNotVerified(AppError):
    status, slug, title = 403, "email-not-verified", "Email address not verified"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    raw = secrets.token_urlsafe(32)
    return raw, hash_token(raw)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def roles_of(role: str) -> list[str]:
    return [ROLE_ADMIN, ROLE_MEMBER] if role == ROLE_ADMIN else [ROLE_MEMBER]


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


@dataclass(frozen=True, slots=True)
class Limits:
    login_pair: Limit
    login_account: Limit
    login_ip: Limit
    reset_account: Limit
    reset_ip: Limit

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        window, account_window = s.auth_login_window_seconds, s.auth_login_account_window_seconds
        reset_window = s.auth_reset_window_seconds
        return cls(
            login_pair=Limit("login-account-ip", s.auth_login_failures_per_account_and_ip, window),
            login_account=Limit("login-account", s.auth_login_failures_per_account, account_window),
            login_ip=Limit("login-ip", s.auth_login_failures_per_ip, window),
            reset_account=Limit("reset-account", s.auth_reset_requests_per_account, reset_window),
            reset_ip=Limit("reset-ip", s.auth_reset_requests_per_ip, reset_window),
        )


@dataclass(frozen=True, slots=True)
class AuthPorts:
    """What auth's use cases are handed by the composition root: the time and new ids."""

    clock: Clock = field(default=system_clock)
    ids: IdSource = field(default=random_ids)


class ServiceBase:
    """The collaborators every use case gets.

    ``session`` is the request's unit of work (it commits when the request succeeds);
    ``sessions`` opens short transactions of their own, for reads that must not keep a pooled
    connection checked out while a password hash runs.
    """

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        passwords: Passwords,
        limiter: RateLimiter,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        *,
        ports: AuthPorts | None = None,
        repo: AuthRepository | None = None,
        outbox: EventSink | None = None,
    ) -> None:
        self.session = session
        self.sessions = sessions
        self.repo = repo or AuthRepository(session)
        self._given_repo = repo is not None
        self.outbox = outbox or Outbox(session)
        self.settings = settings
        self.passwords = passwords
        self.limiter = limiter
        self.limits = Limits.from_settings(settings)
        self.ports = ports or AuthPorts()
        self.clock = self.ports.clock

    def short_repo(self, session: AsyncSession) -> AuthRepository:
        """The repository on a short transaction of its own (``short_session``); a repository
        handed in (a unit test's fake) serves those reads too."""
        return self.repo if self._given_repo else AuthRepository(session)

    def short_session(self) -> AsyncSession:
        factory = self.sessions
        if factory is None:  # pragma: no cover - the dependencies always pass one
            raise RuntimeError("this use case needs a session factory")
        return factory()
