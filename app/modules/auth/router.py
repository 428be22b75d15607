"""auth's HTTP API under /v1/auth."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from app.modules.auth import schemas
from app.modules.auth.dependencies import Auth, ClientIp, Users
from app.modules.auth.models import User
from app.modules.auth.service import TokenPair
from app.platform.pagination import MAX_CURSOR_LENGTH
from app.platform.web.security import AdminPrincipal, CurrentPrincipal, FreshPrincipal

router = APIRouter(prefix="/v1/auth", tags=["auth"])

_BAD_TOKEN: dict[int | str, dict[str, Any]] = {
    400: {"description": "the token is invalid, expired or already used"}
}
# Hashing a password waits for a free hashing slot; a full queue answers at once.
_HASHING: dict[int | str, dict[str, Any]] = {
    503: {"description": "too many password checks queued (see Retry-After)"}
}


def _user(user: User) -> schemas.UserOut:
    return schemas.UserOut(
        id=user.id,
        email=user.email,
        role=user.role,
        email_verified=user.email_verified_at is not None,
        created_at=user.created_at,
    )


def _pair(pair: TokenPair) -> schemas.TokenPairOut:
    return schemas.TokenPairOut(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )


@router.post("/signup", status_code=status.HTTP_202_ACCEPTED, responses=_HASHING)
async def signup(body: schemas.SignupIn, auth: Auth) -> schemas.SignupOut:
    """Register an account; a verification link goes to the address.

    The answer is the same whether or not the address is already registered.
    """
    await auth.signup(body.email, body.password)
    return schemas.SignupOut()


@router.post("/verify-email", responses=_BAD_TOKEN)
async def verify_email(body: schemas.VerifyEmailIn, auth: Auth) -> dict[str, str]:
    """Confirm the address with the token from the verification email (single use, 24 h)."""
    await auth.verify_email(body.token)
    return {"status": "verified"}


@router.post(
    "/login",
    responses={
        401: {"description": "wrong email or password"},
        403: {"description": "the address is not verified yet"},
        429: {"description": "too many failures"},
        **_HASHING,
    },
)
async def login(body: schemas.LoginIn, auth: Auth, ip: ClientIp) -> schemas.TokenPairOut:
    """Exchange email and password for a short-lived access token and a rotating refresh token.

    Failures are limited per (account, address), per account and per address (docs/auth.md).
    """
    return _pair(await auth.login(body.email, body.password, ip))


@router.post("/refresh", responses={401: {"description": "invalid, expired or reused"}})
async def refresh(body: schemas.RefreshIn, auth: Auth) -> schemas.TokenPairOut:
    """Spend a refresh token for a new pair. Presenting a spent token revokes its whole family."""
    return _pair(await auth.refresh(body.refresh_token))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={401: {"description": "invalid refresh token"}},
)
async def logout(body: schemas.RefreshIn, auth: Auth) -> None:
    """Revoke the refresh token's family (this sign-in on every device it was rotated to).

    Its access tokens stop working at once on admin and money routes, elsewhere at expiry.
    """
    await auth.logout(body.refresh_token)


@router.get("/me", responses={404: {"description": "the account no longer exists"}})
async def me(principal: CurrentPrincipal, users: Users) -> schemas.UserOut:
    """The signed-in user."""
    return _user(await users.current_user(principal.user_id))


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
async def delete_me(principal: FreshPrincipal, auth: Auth) -> None:
    """Delete the signed-in account, its sign-ins and its tokens (orders stay, as records)."""
    await auth.delete_account(principal.user_id)


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    responses={429: {"description": "too many requests"}},
)
async def request_password_reset(
    body: schemas.ResetRequestIn, auth: Auth, ip: ClientIp
) -> schemas.ResetRequestOut:
    """Send a reset link (30 minutes, single use) if an account uses the address."""
    await auth.request_password_reset(body.email, ip)
    return schemas.ResetRequestOut()


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_BAD_TOKEN, **_HASHING},
)
async def confirm_password_reset(body: schemas.ResetConfirmIn, auth: Auth) -> None:
    """Set a new password with a reset token; every sign-in and access token is revoked."""
    await auth.confirm_password_reset(body.token, body.new_password)


@router.get("/users")
async def list_users(
    _: AdminPrincipal,
    users: Users,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)] = None,
) -> schemas.UserPage:
    """Users, oldest first (admin only); pass ``next_cursor`` back as ``cursor`` for more."""
    page, next_cursor = await users.list_users(limit=limit, cursor=cursor)
    return schemas.UserPage(items=[_user(u) for u in page], next_cursor=next_cursor)


@router.put(
    "/users/{user_id}/role", responses={409: {"description": "admins cannot change their own"}}
)
async def change_role(
    user_id: uuid.UUID, body: schemas.RoleIn, admin: AdminPrincipal, auth: Auth
) -> schemas.UserOut:
    """Make a user an admin or a member (admin only; not on oneself).

    The user's access tokens stop working at once on admin and money routes.
    """
    return _user(await auth.change_role(admin.user_id, user_id, body.role))
