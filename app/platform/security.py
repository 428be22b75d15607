"""Access tokens and the ``Principal`` they verify into, framework-free.

Access tokens are short-lived JWTs signed with HS256 (the algorithm is pinned: a token that names
another, ``none`` included, is refused). The auth module issues them; every other module only ever
sees the ``Principal``, never auth's internals. The FastAPI dependencies that read a principal
from a request (``CurrentPrincipal``, ``FreshPrincipal``, ``AdminPrincipal``, ...) are the web
layer's: ``app/platform/web/security.py``.

Whether a token still speaks for its account (its ``epoch``, bumped by a role change, a password
reset, a deletion, is current and its sign-in ``sid`` was not logged out) is asked of the
account's owner through the ``PrincipalCheck`` port the composition root binds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt
from sqlalchemy.ext.asyncio import AsyncEngine

from app.platform.config import Settings
from app.platform.errors import Unauthorized

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
