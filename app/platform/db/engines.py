"""Async engines for the primary and the replica, and the session factories bound to them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.platform.config import Settings
from app.platform.observability.sql import InstrumentedPool, instrument_engine


def _engine(url: str, settings: Settings, *, target: str) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        "server_settings": {
            "application_name": f"{settings.service_name}:{target}",
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "timezone": "UTC",
        },
    }
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        # A restarted or failed-over server leaves dead connections in the pool; one cheap
        # round trip on checkout is worth more than a 500 on the first request afterwards.
        pool_pre_ping=True,
        poolclass=InstrumentedPool,
        echo=settings.db_echo,
        connect_args=connect_args,
    )
    instrument_engine(engine, target=target, settings=settings)
    return engine


class Database:
    """The process's engines and session factories.

    ``session()`` opens a session on the primary: every write, every transaction.
    ``read_session()`` opens one for reads that need no transaction: on the replica when one is
    configured, otherwise on the primary.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.primary = _engine(str(settings.database_url), settings, target="primary")
        self.replica: AsyncEngine | None = (
            _engine(str(settings.replica_database_url), settings, target="replica")
            if settings.replica_database_url
            else None
        )
        self.session = async_sessionmaker(self.primary, expire_on_commit=False, autoflush=False)
        self.read_session = async_sessionmaker(
            self.replica or self.primary, expire_on_commit=False, autoflush=False
        )

    async def dispose(self) -> None:
        await self.primary.dispose()
        if self.replica is not None:
            await self.replica.dispose()


__all__ = ["AsyncSession", "Database"]
