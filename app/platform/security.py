"""Stateless access-token verification into a ``Principal`` that every module uses.

Access tokens are short-lived JWTs signed with HS256 (the algorithm is pinned: a token that names
another, ``none`` included, is refused). The auth module issues them; every other module only ever
sees the ``Principal`` these dependencies produce, never auth's internals.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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

    def has_role(self, role: str) -> bool:
        return role in self.roles


def create_access_token(
    settings: Settings,
    user_id: uuid.UUID,
    roles: Iterable[str],
    *,
    now: datetime | None = None,
    ttl: timedelta | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "iat": int(issued.timestamp()),
        "exp": int(
            (issued + (ttl or timedelta(seconds=settings.access_token_ttl_seconds))).timestamp()
        ),
        "jti": uuid.uuid4().hex,
        "roles": sorted(set(roles)),
    }
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
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired", reason="expired") from exc
    except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
        raise Unauthorized("The access token is invalid", reason="invalid") from exc
    return Principal(user_id=user_id, roles=frozenset(roles))


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


def require_role(role: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that admits only principals holding ``role`` (403 otherwise)."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_role(role):
            raise Forbidden(f"This needs the '{role}' role")
        return principal

    dependency.__name__ = f"require_role_{role}"
    declare(dependency, 401, 403, security="required")
    return dependency


AdminPrincipal = Annotated[Principal, Depends(require_role(ROLE_ADMIN))]
