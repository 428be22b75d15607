"""Accounts: signup, verification, password reset, roles, deletion."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.auth import metrics
from app.modules.auth.interface import (
    AccountDeleted,
    EmailVerified,
    PasswordResetAsked,
    PasswordResetRequested,
    UserSignedUp,
)
from app.modules.auth.models import PURPOSE_PASSWORD_RESET, PURPOSE_VERIFY_EMAIL, OneTimeToken, User
from app.modules.auth.passwords import strength_problems
from app.modules.auth.repository import AuthRepository
from app.modules.auth.service._common import (
    AuthPorts,
    InvalidToken,
    ServiceBase,
    hash_token,
    new_token,
    normalize_email,
)
from app.platform.config import Settings
from app.platform.errors import Conflict, NotFound, ValidationFailed
from app.platform.events import EventSink, Outbox
from app.platform.security import ROLE_MEMBER


def _one_time_token(
    repo: AuthRepository, user_id: uuid.UUID, purpose: str, expires_at: datetime
) -> tuple[str, datetime]:
    raw, digest = new_token()
    repo.add(
        OneTimeToken(user_id=user_id, purpose=purpose, token_hash=digest, expires_at=expires_at)
    )
    return raw, expires_at


def _usable(token: OneTimeToken | None, now: datetime) -> OneTimeToken:
    if token is None or token.used_at is not None or token.expires_at <= now:
        raise InvalidToken("The token is invalid, expired or already used")
    return token


class PasswordResetLinks:
    """Mints reset links off the request path (auth's listener), in the delivery's session."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        *,
        ports: AuthPorts | None = None,
        repo: AuthRepository | None = None,
        outbox: EventSink | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.ports = ports or AuthPorts()
        self.repo = repo or AuthRepository(session)
        self.outbox = outbox or Outbox(session)

    async def issue(self, email: str) -> None:
        """Mail a reset link if an account uses ``email``.

        The request only records that a reset was asked for, the same statements whether or
        not the address is known; finding the account and minting the link happen here.
        """
        user = await self.repo.user_by_email(email)
        if user is None:
            return
        # Only the newest link works.
        await self.repo.retire_one_time_tokens(user.id, PURPOSE_PASSWORD_RESET)
        expires = self.ports.clock() + timedelta(minutes=self.settings.auth_reset_ttl_minutes)
        raw, expires_at = _one_time_token(self.repo, user.id, PURPOSE_PASSWORD_RESET, expires)
        await self.outbox.publish(
            PasswordResetRequested(
                user_id=user.id,
                email=user.email,
                reset_url=f"{self.settings.public_base_url}/reset-password?token={raw}",
                expires_at=expires_at,
            )
        )
        await self.session.flush()


class AccountsMixin(ServiceBase):
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
        signup does not tell a stranger which addresses have accounts. The hash runs before
        the first statement, so no pooled connection waits on it.
        """
        email = normalize_email(email)
        self._check_strength(password, email, "password")
        password_hash = await self.passwords.hash(password)
        if await self.repo.user_by_email(email) is not None:
            return
        user = User(id=self.ports.ids(), email=email, password_hash=password_hash, role=ROLE_MEMBER)
        try:
            async with self.session.begin_nested():
                self.repo.add(user)
        except IntegrityError:
            return  # a concurrent signup with the same address won; same answer
        expires = self.clock() + timedelta(hours=self.settings.auth_verification_ttl_hours)
        raw, expires_at = _one_time_token(self.repo, user.id, PURPOSE_VERIFY_EMAIL, expires)
        await self.outbox.publish(
            UserSignedUp(
                user_id=user.id,
                email=email,
                verification_url=f"{self.settings.public_base_url}/verify-email?token={raw}",
                expires_at=expires_at,
            )
        )
        metrics.SIGNUPS.labels(stage="started").inc()

    async def _redeem(self, raw: str, purpose: str) -> OneTimeToken:
        token = _usable(await self.repo.one_time_token(hash_token(raw), purpose), self.clock())
        token.used_at = self.clock()
        return token

    async def verify_email(self, raw: str) -> None:
        token = await self._redeem(raw, PURPOSE_VERIFY_EMAIL)
        user = await self.repo.user_by_id(token.user_id, for_update=True)
        if user is None:  # pragma: no cover - the foreign key cascades
            raise InvalidToken()
        if user.email_verified_at is None:
            user.email_verified_at = self.clock()
            await self.outbox.publish(EmailVerified(user_id=user.id, email=user.email))
            metrics.SIGNUPS.labels(stage="verified").inc()
        await self.session.flush()

    # -- password reset ----------------------------------------------------------------------
    async def request_password_reset(self, email: str, client_ip: str) -> None:
        """Record the request: the same statements, known address or not (the listener acts)."""
        email = normalize_email(email)
        await self.limiter.consume(
            (self.limits.reset_account, email), (self.limits.reset_ip, client_ip)
        )
        await self.outbox.publish(PasswordResetAsked(email=email))

    async def confirm_password_reset(self, raw: str, new_password: str) -> None:
        """Set the new password; every sign-in and access token of the account is revoked.

        The token is looked at first in a short transaction of its own, so that no pooled
        connection (nor the token's row lock) is held while the new hash is computed.
        """
        async with self.short_session() as session:
            repo = self.short_repo(session)
            found = await repo.one_time_token(hash_token(raw), PURPOSE_PASSWORD_RESET)
            token = _usable(found, self.clock())
            user = await repo.user_by_id(token.user_id)
            email = user.email if user is not None else ""
        self._check_strength(new_password, email, "new_password")
        password_hash = await self.passwords.hash(new_password)
        token = await self._redeem(raw, PURPOSE_PASSWORD_RESET)
        user = await self.repo.user_by_id(token.user_id, for_update=True)
        if user is None:  # pragma: no cover - the foreign key cascades
            raise InvalidToken()
        user.password_hash = password_hash
        user.password_changed_at = self.clock()
        # Reaching the inbox proves ownership of the address as well as verification would.
        user.email_verified_at = user.email_verified_at or self.clock()
        await self.repo.revoke_all_for_user(user.id)
        await self.repo.bump_epoch(user.id)
        await self.session.flush()

    # -- users and roles ---------------------------------------------------------------------
    async def get_user(self, user_id: uuid.UUID) -> User:
        user = await self.repo.user_by_id(user_id)
        if user is None:
            raise NotFound("No such user")
        return user

    async def change_role(self, actor: uuid.UUID, user_id: uuid.UUID, role: str) -> User:
        """Set the role; the account's access tokens stop working on admin and money routes."""
        if actor == user_id:
            raise Conflict("Admins cannot change their own role (ask another admin)")
        user = await self.repo.user_by_id(user_id, for_update=True)
        if user is None:
            raise NotFound("No such user")
        if user.role != role:
            user.role = role
            await self.repo.bump_epoch(user.id)
        await self.session.flush()
        return user

    async def delete_account(self, user_id: uuid.UUID) -> None:
        """Delete the account and everything auth keeps of it; its tokens die with it."""
        user = await self.repo.user_by_id(user_id, for_update=True)
        if user is None:
            raise NotFound("The account no longer exists")
        await self.repo.bump_epoch(user.id)
        await self.repo.delete_user(user.id)
        await self.outbox.publish(AccountDeleted(user_id=user.id, email=user.email))
        await self.session.flush()
