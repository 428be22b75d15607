"""The FastAPI dependencies that read the caller's ``Principal`` from a request.

Verification is stateless (``CurrentPrincipal``) except where a revoked token must stop at once:
``FreshPrincipal`` (routes that move money) and ``AdminPrincipal`` also ask the account's owner,
through the ``PrincipalCheck`` port (``app/platform/security.py``), whether the token still speaks
for the account.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.platform.errors import Forbidden, Unauthorized
from app.platform.openapi import declare
from app.platform.security import ROLE_ADMIN, Principal, PrincipalCheck, verify_access_token

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
