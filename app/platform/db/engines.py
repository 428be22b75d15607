"""Async engines for the primary and the replicas, and the session factories bound to them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.platform.config import Settings
from app.platform.db import pooling
from app.platform.db.consistency import TokenCodec, WriteMemory, WriteTrackingSession
from app.platform.db.lsn import lsn_to_int
from app.platform.db.replica import ReplicaMonitors, replica_names
from app.platform.db.routing import ReadRouter, RoutedReadSession
from app.platform.observability.sql import InstrumentedPool, instrument_engine


def _engine(url: str, settings: Settings, *, target: str) -> AsyncEngine:
    connect_args = pooling.connect_args(
        settings, application_name=f"{settings.service_name}:{target}"
    )
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
    ``read_session()`` opens a read-only one for reads that need no transaction, routed at its
    first statement by ``router`` (see routing.py); ``monitors`` keep each replica's health.
    ``replica`` and ``monitor`` are the first replica's (none: ``None`` and a monitor that says
    "not configured"), for what deals with one replica.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.primary = _engine(str(settings.database_url), settings, target="primary")
        urls = settings.replica_urls
        self.replicas: tuple[AsyncEngine, ...] = tuple(
            _engine(url, settings, target="replica") for url in urls
        )
        self.replica: AsyncEngine | None = self.replicas[0] if self.replicas else None
        self.monitors = ReplicaMonitors(
            self.primary, list(zip(replica_names(urls), self.replicas, strict=True)), settings
        )
        self.monitor = self.monitors.first
        self.router = ReadRouter(
            self.primary,
            list(zip(self.replicas, self.monitors.all, strict=True)),
            enabled=settings.db_replica_reads,
        )
        self.tokens = TokenCodec(settings.secret_key.get_secret_value())
        self.writes = WriteMemory(settings.db_read_your_writes_seconds)
        self.session = async_sessionmaker(
            self.primary,
            sync_session_class=WriteTrackingSession,
            expire_on_commit=False,
            autoflush=False,
        )
        self.read_session = async_sessionmaker(
            class_=RoutedReadSession, router=self.router, expire_on_commit=False, autoflush=False
        )

    async def wal_insert_lsn(self) -> int:
        """The primary's WAL insert position: past every commit that has returned."""
        async with self.primary.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            # On the driver connection, outside any transaction: one round trip, no BEGIN.
            value = await driver.fetchval("SELECT pg_current_wal_insert_lsn()::text")
        return lsn_to_int(str(value))

    async def dispose(self) -> None:
        await self.monitors.stop()
        await self.primary.dispose()
        for replica in self.replicas:
            await replica.dispose()


__all__ = ["AsyncSession", "Database"]
