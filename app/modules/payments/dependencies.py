"""FastAPI dependencies of the payments module: its services, built with their session and the
ports the composition root handed over (``app.state.payments_ports``), and the idempotency key."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.modules.payments.service import (
    CatalogReads,
    CatalogService,
    CheckoutService,
    OrdersService,
    PaymentsPorts,
    RefundsService,
    WebhooksService,
)
from app.modules.payments.service._common import IdempotencyKeyRequired
from app.platform.config import Settings
from app.platform.openapi import declare, required_header
from app.platform.web.sessions import PrimarySession, ReadSession, get_database

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces: what clients generate
# The services' dependencies are ``async def``: a plain ``def`` runs in FastAPI's thread pool, a
# hop that costs more than building the service.


def get_ports(request: Request) -> PaymentsPorts:
    """The ports ``app/bootstrap.py`` bound for this app (the provider is chosen there)."""
    ports: PaymentsPorts = request.app.state.payments_ports
    return ports


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    return get_database(request).session


async def _catalog_writer(request: Request, session: PrimarySession) -> CatalogService:
    return CatalogService(session, ids=get_ports(request).ids)


async def _catalog_reader(request: Request, session: ReadSession) -> CatalogReads:
    return CatalogReads(session, ids=get_ports(request).ids)


async def _orders(session: PrimarySession) -> OrdersService:
    return OrdersService(session)


async def _checkout(request: Request) -> CheckoutService:
    return CheckoutService(get_sessions(request), get_settings(request), get_ports(request))


async def _refunds(request: Request) -> RefundsService:
    return RefundsService(get_sessions(request), get_settings(request), get_ports(request))


async def _webhooks(request: Request, session: PrimarySession) -> WebhooksService:
    return WebhooksService(session, get_settings(request))


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
AppSettings = Annotated[Settings, Depends(get_settings)]
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]
Ports = Annotated[PaymentsPorts, Depends(get_ports)]
IdempotencyKey = Annotated[str, Depends(idempotency_key)]
Catalog = Annotated[CatalogService, Depends(_catalog_writer)]
CatalogReader = Annotated[CatalogReads, Depends(_catalog_reader)]
Orders = Annotated[OrdersService, Depends(_orders)]
Checkout = Annotated[CheckoutService, Depends(_checkout)]
Refunds = Annotated[RefundsService, Depends(_refunds)]
Webhooks = Annotated[WebhooksService, Depends(_webhooks)]
