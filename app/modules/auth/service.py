"""auth's use cases: signup, verification, login, refresh rotation, logout, reset, roles.

Services flush and never commit; the request's unit of work commits. What must survive a failed
request (brute-force counters) goes through the rate limiter's own transaction, and a reused
refresh token revokes its family with an error that commits (``Unauthorized(commit=True)``).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.auth import metrics
from app.modules.auth.interface import EmailVerified, PasswordResetRequested, UserSignedUp
from app.modules.auth.models import (
    PURPOSE_PASSWORD_RESET,
    PURPOSE_VERIFY_EMAIL,
    OneTimeToken,
    RefreshToken,
    User,
)
from app.modules.auth.passwords import Passwords, strength_problems
from app.modules.auth.repository import AuthRepository
from app.platform.config import Settings
from app.platform.errors import (
    AppError,
    Conflict,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from app.platform.events import publish
from app.platform.ratelimit import Limit, RateLimiter
from app.platform.security import ROLE_ADMIN, ROLE_MEMBER, create_access_token


class InvalidToken(AppError):
    status, slug, title = 400, "invalid-token", "Invalid or expired token"


class EmailNotVerified(AppError):
    status, slug, title = 403, "email-not-verified", "Email address not verified"


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    raw = secrets.token_urlsafe(32)
    return raw, _hash_token(raw)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def roles_of(user: User) -> list[str]:
    return [ROLE_ADMIN, ROLE_MEMBER] if user.role == ROLE_ADMIN else [ROLE_MEMBER]


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


@dataclass(frozen=True, slots=True)
class Limits:
    login_account: Limit
    login_ip: Limit
    reset_account: Limit
    reset_ip: Limit

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        login_window, reset_window = s.auth_login_window_seconds, s.auth_reset_window_seconds
        return cls(
            login_account=Limit("login-account", s.auth_login_failures_per_account, login_window),
            login_ip=Limit("login-ip", s.auth_login_failures_per_ip, login_window),
            reset_account=Limit("reset-account", s.auth_reset_requests_per_account, reset_window),
            reset_ip=Limit("reset-ip", s.auth_reset_requests_per_ip, reset_window),
        )


class AuthService:
    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        passwords: Passwords,
        limiter: RateLimiter,
    ) -> None:
        self.session = session
        self.repo = AuthRepository(session)
        self.settings = settings
        self.passwords = passwords
        self.limiter = limiter
        self.limits = Limits.from_settings(settings)

    # -- signup and verification -------------------------------------------------------------
    def _check_strength(self, password: str, email: str, field: str) -> None:
        problems = strength_problems(password, email, self.settings.auth_password_min_length)
        if problems:
            raise ValidationFailed(
                "The password is too weak",
                errors=[
                    {
                        "loc": ["body", field],
                        "field": field,
                        "msg": f"password {p}",
                        "type": "weak_password",
                    }
                    for p in problems
                ],
            )

    async def signup(self, email: str, password: str) -> None:
        """Create an unverified account and ask its owner to confirm the address.

        An address that is already registered gets the same answer and costs the same hash, so
        signup does not tell a stranger which addresses have accounts.
        """
        email = normalize_email(email)
        self._check_strength(password, email, "password")
        password_hash = await self.passwords.hash(password)
        if await self.repo.user_by_email(email) is not None:
            return
        user = User(id=uuid.uuid4(), email=email, password_hash=password_hash, role=ROLE_MEMBER)
        try:
            async with self.session.begin_nested():
                self.repo.add(user)
        except IntegrityError:
            return  # a concurrent signup with the same address won; same answer
        raw, expires_at = self._one_time_token(
            user.id, PURPOSE_VERIFY_EMAIL, self._verification_ttl
        )
        await publish(
            self.session,
            UserSignedUp(
                user_id=user.id,
                email=email,
                verification_url=f"{self.settings.public_base_url}/verify-email?token={raw}",
                expires_at=expires_at,
            ),
        )
        metrics.SIGNUPS.labels(stage="started").inc()

    @property
    def _verification_ttl(self) -> timedelta:
        return timedelta(hours=self.settings.auth_verification_ttl_hours)

    @property
    def _reset_ttl(self) -> timedelta:
        return timedelta(minutes=self.settings.auth_reset_ttl_minutes)

    def _one_time_token(
        self, user_id: uuid.UUID, purpose: str, ttl: timedelta
    ) -> tuple[str, datetime]:
        raw, digest = _new_token()
        expires_at = datetime.now(UTC) + ttl
        self.repo.add(
            OneTimeToken(user_id=user_id, purpose=purpose, token_hash=digest, expires_at=expires_at)
        )
        return raw, expires_at

    async def _redeem(self, raw: str, purpose: str) -> OneTimeToken:
        token = await self.repo.one_time_token(_hash_token(raw), purpose)
        if token is None or token.used_at is not None or token.expires_at <= datetime.now(UTC):
            raise InvalidToken("The token is invalid, expired or already used")
        token.used_at = datetime.now(UTC)
        return token

    async def verify_email(self, raw: str) -> None:
        token = await self._redeem(raw, PURPOSE_VERIFY_EMAIL)
        user = await self.repo.user_by_id(token.user_id, for_update=True)
        if user is None:  # pragma: no cover - the foreign key cascades
            raise InvalidToken()
        if user.email_verified_at is None:
            user.email_verified_at = datetime.now(UTC)
            await publish(self.session, EmailVerified(user_id=user.id, email=user.email))
            metrics.SIGNUPS.labels(stage="verified").inc()
        await self.session.flush()

    # -- login, refresh, logout --------------------------------------------------------------
    async def login(self, email: str, password: str, client_ip: str) -> TokenPair:
        email = normalize_email(email)
        try:
            await self.limiter.check(
                (self.limits.login_account, email), (self.limits.login_ip, client_ip)
            )
        except AppError:
            metrics.LOGINS.labels(outcome="rate_limited").inc()
            raise
        user = await self.repo.user_by_email(email)
        # One hash either way, so the response time does not say whether the account exists.
        if (
            not await self.passwords.verify(user.password_hash if user else None, password)
            or user is None
        ):
            await self.limiter.hit(self.limits.login_account, email)
            await self.limiter.hit(self.limits.login_ip, client_ip)
            metrics.LOGINS.labels(outcome="invalid_credentials").inc()
            raise Unauthorized("The email or password is incorrect", reason="invalid_credentials")
        if self.settings.auth_require_verified_email and user.email_verified_at is None:
            metrics.LOGINS.labels(outcome="unverified").inc()
            raise EmailNotVerified("Confirm your email address first; the link is in your inbox")
        if self.passwords.needs_rehash(user.password_hash):
            user.password_hash = await self.passwords.hash(password)
        await self.limiter.reset(self.limits.login_account, email)
        metrics.LOGINS.labels(outcome="success").inc()
        return await self._issue(user, family_id=uuid.uuid4())

    async def _issue(self, user: User, family_id: uuid.UUID) -> TokenPair:
        ttl = timedelta(days=self.settings.auth_refresh_token_ttl_days)
        raw, digest = _new_token()
        self.repo.add(
            RefreshToken(
                user_id=user.id,
                family_id=family_id,
                token_hash=digest,
                expires_at=datetime.now(UTC) + ttl,
            )
        )
        await self.session.flush()
        return TokenPair(
            access_token=create_access_token(self.settings, user.id, roles_of(user)),
            expires_in=self.settings.access_token_ttl_seconds,
            refresh_token=raw,
            refresh_expires_in=int(ttl.total_seconds()),
        )

    async def refresh(self, raw: str) -> TokenPair:
        """Rotate: the presented token is spent and a new one of the same family issued.

        A spent or revoked token presented again means it leaked (or the client is confused):
        the whole family is revoked, the newest token included, and the error still commits.
        """
        token = await self.repo.refresh_by_hash(_hash_token(raw))
        if token is None:
            raise Unauthorized("The refresh token is invalid", reason="invalid")
        if token.rotated_at is not None or token.revoked_at is not None:
            await self.repo.revoke_family(token.family_id)
            raise Unauthorized(
                "The refresh token was already used; every session of this sign-in is revoked",
                reason="reused",
                commit=True,
            )
        if token.expires_at <= datetime.now(UTC):
            raise Unauthorized("The refresh token has expired", reason="expired")
        user = await self.repo.user_by_id(token.user_id)
        if user is None:  # pragma: no cover - the foreign key cascades
            raise Unauthorized("The refresh token is invalid", reason="invalid")
        token.rotated_at = datetime.now(UTC)
        return await self._issue(user, family_id=token.family_id)

    async def logout(self, raw: str) -> None:
        """Revoke the token's family. Unknown tokens are ignored: logging out is idempotent."""
        token = await self.repo.refresh_by_hash(_hash_token(raw))
        if token is not None:
            await self.repo.revoke_family(token.family_id)

    # -- password reset ----------------------------------------------------------------------
    async def request_password_reset(self, email: str, client_ip: str) -> None:
        email = normalize_email(email)
        await self.limiter.check(
            (self.limits.reset_account, email), (self.limits.reset_ip, client_ip)
        )
        await self.limiter.hit(self.limits.reset_account, email)
        await self.limiter.hit(self.limits.reset_ip, client_ip)
        user = await self.repo.user_by_email(email)
        if user is None:
            return
        # Only the newest link works.
        await self.repo.retire_one_time_tokens(user.id, PURPOSE_PASSWORD_RESET)
        raw, expires_at = self._one_time_token(user.id, PURPOSE_PASSWORD_RESET, self._reset_ttl)
        await publish(
            self.session,
            PasswordResetRequested(
                user_id=user.id,
                email=user.email,
                reset_url=f"{self.settings.public_base_url}/reset-password?token={raw}",
                expires_at=expires_at,
            ),
        )
        await self.session.flush()

    async def confirm_password_reset(self, raw: str, new_password: str) -> None:
        token = await self._redeem(raw, PURPOSE_PASSWORD_RESET)
        user = await self.repo.user_by_id(token.user_id, for_update=True)
        if user is None:  # pragma: no cover
            raise InvalidToken()
        self._check_strength(new_password, user.email, "new_password")
        user.password_hash = await self.passwords.hash(new_password)
        user.password_changed_at = datetime.now(UTC)
        # Reaching the inbox proves ownership of the address as well as verification would.
        user.email_verified_at = user.email_verified_at or datetime.now(UTC)
        await self.repo.revoke_all_for_user(user.id)
        await self.session.flush()

    # -- users and roles ---------------------------------------------------------------------
    async def get_user(self, user_id: uuid.UUID) -> User:
        user = await self.repo.user_by_id(user_id)
        if user is None:
            raise NotFound("No such user")
        return user

    async def change_role(self, actor: uuid.UUID, user_id: uuid.UUID, role: str) -> User:
        if actor == user_id:
            raise Conflict("Admins cannot change their own role (ask another admin)")
        user = await self.repo.user_by_id(user_id, for_update=True)
        if user is None:
            raise NotFound("No such user")
        user.role = role
        await self.session.flush()
        return user


__all__: list[Any] = ["AuthService", "TokenPair"]
