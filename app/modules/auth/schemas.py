"""auth's request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from app.modules.auth.passwords import MAX_LENGTH
from app.platform.schema import Page, RequestBody

Password = Field(min_length=1, max_length=MAX_LENGTH)
OpaqueToken = Field(min_length=16, max_length=200)


_Body = RequestBody


class SignupIn(_Body):
    email: EmailStr
    password: str = Password


class SignupOut(BaseModel):
    status: Literal["verification_sent"] = "verification_sent"
    detail: str = "If the address can be registered, a verification link is on its way."


class VerifyEmailIn(_Body):
    token: str = OpaqueToken


class LoginIn(_Body):
    email: EmailStr
    password: str = Password


class RefreshIn(_Body):
    refresh_token: str = OpaqueToken


class TokenPairOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="seconds the access token lives")
    refresh_token: str
    refresh_expires_in: int


class ResetRequestIn(_Body):
    email: EmailStr


class ResetRequestOut(BaseModel):
    status: Literal["reset_requested"] = "reset_requested"
    detail: str = "If an account uses this address, a reset link is on its way."


class ResetConfirmIn(_Body):
    token: str = OpaqueToken
    new_password: str = Password


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: Literal["member", "admin"]
    email_verified: bool
    created_at: datetime


class UserPage(Page[UserOut]):
    pass


class RoleIn(_Body):
    role: Literal["member", "admin"]
