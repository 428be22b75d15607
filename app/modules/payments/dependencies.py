"""FastAPI dependencies of the payments module: the provider, session factory, idempotency key."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.modules.payments.providers import PaymentProvider
from app.modules.payments.service._common import IdempotencyKeyRequired
from app.platform.config import Settings
from app.platform.openapi import declare, required_header
from app.platform.web.sessions import get_database

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces: what clients generate


def get_provider(request: Request) -> PaymentProvider:
    """The process's payment provider, built from settings by the composition root."""
    provider: PaymentProvider = request.app.state.payments_provider
    return provider


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    return get_database(request).session


def idempotency_key(
    key: Annotated[
        str | None,
        required_header(
            "Idempotency-Key",
            "a unique key per intended operation (e.g. a UUID); a retry reuses it",
        ),
    ] = None,
) -> str:
    if key is None:
        raise IdempotencyKeyRequired("Send an Idempotency-Key header (a UUID will do)")
    if not _KEY.match(key):
        raise IdempotencyKeyRequired(
            "The Idempotency-Key must be 1 to 255 printable ASCII characters without spaces"
        )
    return key


declare(idempotency_key, 400)
Provider = Annotated[PaymentProvider, Depends(get_provider)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]
IdempotencyKey = Annotated[str, Depends(idempotency_key)]
