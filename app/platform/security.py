"""Access-token verification into a ``Principal`` that every module uses.

Access tokens are short-lived JWTs signed with HS256 (the algorithm is pinned: a token that names
another, ``none`` included, is refused). The auth module issues them; every other module only ever
sees the ``Principal`` these dependencies produce, never auth's internals.

Verification is stateless (``CurrentPrincipal``) except where a revoked token must stop at once:
``FreshPrincipal`` (routes that move money) and ``AdminPrincipal`` also ask the account's owner,
through a ``PrincipalCheck`` port the composition root binds, whether the token still speaks for
the account: its ``epoch`` (bumped by a role change, a password reset, a deletion) is current and
its sign-in (``sid``) was not logged out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.platform.config import Settings
from app.platform.errors import Forbidden, Unauthorized
from app.platform.openapi import declare

ALGORITHM = "HS256"
ROLE_MEMBER = "member"
ROLE_ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified subject of an access token."""

    user_id: uuid.UUID
    roles: frozenset[str]
    # The account's token epoch when the token was issued, and the sign-in it belongs to.
    epoch: int = 0
    session_id: uuid.UUID | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles


def create_access_token(
    settings: Settings,
    user_id: uuid.UUID,
    roles: Iterable[str],
    *,
    now: datetime | None = None,
    ttl: timedelta | None = None,
    epoch: int = 0,
    session_id: uuid.UUID | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "iat": int(issued.timestamp()),
        "exp": int(
            (issued + (ttl or timedelta(seconds=settings.access_token_ttl_seconds))).timestamp()
        ),
        "jti": uuid.uuid4().hex,
        "roles": sorted(set(roles)),
        "epoch": epoch,
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)


def verify_access_token(settings: Settings, token: str) -> Principal:
    """The token's principal, or ``Unauthorized`` saying why (never which check passed)."""
    try:
        claims = jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            leeway=settings.jwt_leeway_seconds,
        )
        user_id = uuid.UUID(claims["sub"])
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized("The access token's roles are malformed")
        epoch = claims.get("epoch", 0)
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch < 2**31:
            raise Unauthorized("The access token's epoch is malformed")
        sid = claims.get("sid")
        session_id = uuid.UUID(sid) if isinstance(sid, str) else None
        if sid is not None and session_id is None:
            raise Unauthorized("The access token's session is malformed")
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired", reason="expired") from exc
    except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
        raise Unauthorized("The access token is invalid", reason="invalid") from exc
    return Principal(user_id=user_id, roles=frozenset(roles), epoch=epoch, session_id=session_id)


class PrincipalCheck(Protocol):
    """Whether a verified token still speaks for its account (the owner of accounts answers).

    Bound as ``app.state.principal_check`` by the composition root; given the primary's engine,
    because a replica a moment behind would let a just-revoked token through.
    """

    async def __call__(self, engine: AsyncEngine, principal: Principal) -> bool: ...


_bearer = HTTPBearer(auto_error=False, description="An access token from POST /v1/auth/login")


async def _optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized(
            "The Authorization header must be 'Bearer <access token>'", reason="malformed"
        )
    principal = verify_access_token(request.app.state.settings, credentials.credentials)
    # Platform code downstream (read-your-writes, rate limits, logs) keys on the caller.
    request.state.principal = principal
    return principal


async def _require_principal(
    principal: Annotated[Principal | None, Depends(_optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthorized("This endpoint needs an access token", reason="missing")
    return principal


declare(_optional_principal, 401, security="optional")
declare(_require_principal, 401, security="required")
OptionalPrincipal = Annotated[Principal | None, Depends(_optional_principal)]
CurrentPrincipal = Annotated[Principal, Depends(_require_principal)]


async def _fresh_principal(request: Request, principal: CurrentPrincipal) -> Principal:
    await _ensure_fresh(request, principal)
    return principal


async def _ensure_fresh(request: Request, principal: Principal) -> None:
    check: PrincipalCheck | None = getattr(request.app.state, "principal_check", None)
    if check is None:
        # Failing open would quietly turn every revocation off.
        raise RuntimeError("no PrincipalCheck bound: app/bootstrap.py binds it")
    if not await check(request.app.state.db.primary, principal):
        raise Unauthorized(
            "The access token was revoked (sign-out, password or role change); "
            "refresh it or sign in again",
            reason="revoked",
        )


FreshPrincipal = Annotated[Principal, Depends(_fresh_principal)]


def require_role(role: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that admits only fresh principals holding ``role`` (403 otherwise).

    Fresh: a role is a power, and a demoted admin must lose it at once, not at expiry.
    """

    async def dependency(request: Request, principal: CurrentPrincipal) -> Principal:
        if not principal.has_role(role):
            raise Forbidden(f"This needs the '{role}' role")
        await _ensure_fresh(request, principal)
        return principal

    dependency.__name__ = f"require_role_{role}"
    declare(dependency, 401, 403, security="required")
    return dependency


AdminPrincipal = Annotated[Principal, Depends(require_role(ROLE_ADMIN))]
