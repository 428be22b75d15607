"""Signing in and out: login under brute-force limits, refresh rotation, logout."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.modules.auth import metrics
from app.modules.auth.models import RefreshToken
from app.modules.auth.repository import Credentials
from app.modules.auth.service._common import (
    EmailNotVerified,
    ServiceBase,
    TokenPair,
    hash_token,
    new_token,
    normalize_email,
    roles_of,
)
from app.platform.errors import AppError, TooManyRequests, Unauthorized
from app.platform.ratelimit import Check
from app.platform.security import create_access_token


class SessionsMixin(ServiceBase):
    def _login_checks(self, email: str, client_ip: str) -> tuple[Check, Check, Check]:
        return (
            (self.limits.login_pair, f"{email}|{client_ip}"),
            (self.limits.login_account, email),
            (self.limits.login_ip, client_ip),
        )

    async def login(self, email: str, password: str, client_ip: str) -> TokenPair:
        """Count the attempt, check the password, and only then hand out tokens.

        The attempt is counted before the hash (so parallel guesses cannot overtake the limit)
        and given back when it was not a failure. No pooled connection is held while the hash
        runs: the account is read in a transaction of its own, the tokens written after.
        """
        email = normalize_email(email)
        checks = self._login_checks(email, client_ip)
        try:
            await self.limiter.consume(*checks)
        except TooManyRequests:
            metrics.LOGINS.labels(outcome="rate_limited").inc()
            raise
        try:
            async with self.short_session() as session:
                account = await self.short_repo(session).credentials(email=email)
            # One hash either way, so the response time does not say whether the account exists.
            right = await self.passwords.verify(
                account.password_hash if account else None, password
            )
        except AppError:
            # Never tried (the hashing queue was full): no guess was made, none is counted.
            await self.limiter.give_back(*checks)
            raise
        if account is None or not right:
            metrics.LOGINS.labels(outcome="invalid_credentials").inc()
            raise Unauthorized("The email or password is incorrect", reason="invalid_credentials")
        # The right password is not a failure; the owner's success also clears this address.
        await self.limiter.give_back(*checks[1:], clear=checks[:1])
        if self.settings.auth_require_verified_email and not account.verified:
            metrics.LOGINS.labels(outcome="unverified").inc()
            raise EmailNotVerified("Confirm your email address first; the link is in your inbox")
        if self.passwords.needs_rehash(account.password_hash):
            await self.repo.set_password_hash(account.id, await self.passwords.hash(password))
        metrics.LOGINS.labels(outcome="success").inc()
        return await self._issue(account, family_id=self.ports.ids())

    async def _issue(self, account: Credentials, family_id: uuid.UUID) -> TokenPair:
        ttl = timedelta(days=self.settings.auth_refresh_token_ttl_days)
        raw, digest = new_token()
        self.repo.add(
            RefreshToken(
                user_id=account.id,
                family_id=family_id,
                token_hash=digest,
                expires_at=self.clock() + ttl,
            )
        )
        await self.session.flush()
        access = create_access_token(
            self.settings,
            account.id,
            roles_of(account.role),
            epoch=account.epoch,
            session_id=family_id,
        )
        return TokenPair(
            access_token=access,
            expires_in=self.settings.access_token_ttl_seconds,
            refresh_token=raw,
            refresh_expires_in=int(ttl.total_seconds()),
        )

    async def refresh(self, raw: str) -> TokenPair:
        """Rotate: the presented token is spent and a new one of the same family issued.

        A spent or revoked token presented again means it leaked (or the client is confused):
        the whole family is revoked, the newest token included, and the error still commits.
        The new access token carries the account's role and epoch as they are now.
        """
        token = await self.repo.refresh_by_hash(hash_token(raw))
        if token is None:
            raise Unauthorized("The refresh token is invalid", reason="invalid")
        if token.rotated_at is not None or token.revoked_at is not None:
            await self.repo.revoke_family(token.family_id)
            raise Unauthorized(
                "The refresh token was already used; every session of this sign-in is revoked",
                reason="reused",
                commit=True,
            )
        if token.expires_at <= self.clock():
            raise Unauthorized("The refresh token has expired", reason="expired")
        account = await self.repo.credentials(user_id=token.user_id)
        if account is None:  # pragma: no cover - the foreign key cascades
            raise Unauthorized("The refresh token is invalid", reason="invalid")
        token.rotated_at = self.clock()
        return await self._issue(account, family_id=token.family_id)

    async def logout(self, raw: str) -> None:
        """Revoke the token's family, and with it the sign-in's access tokens on fresh routes.

        Unknown tokens are ignored: logging out is idempotent.
        """
        token = await self.repo.refresh_by_hash(hash_token(raw))
        if token is not None:
            await self.repo.revoke_family(token.family_id)
