"""A LISTEN connection that hands each NOTIFY on a channel to a callback, reconnecting for ever.

PostgreSQL delivers a ``pg_notify`` only when the transaction that sent it commits, and to
every session listening at that moment: a cheap broadcast to every process of the app (the
outbox's wake-up, the catalog cache's invalidations). A notification sent while a listener was
disconnected is lost to it, so every (re)connect calls ``on_connect``: the caller treats it as
"you may have missed anything" (poll now, drop every cached entry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from app.platform.config import Settings
from app.platform.observability.logging import get_logger

log = get_logger("app.listen")


def listen_dsn(settings: Settings) -> str:
    """Where LISTEN connects: the primary itself (APP_DATABASE_DIRECT_URL), never a pooler in
    transaction mode, which would hand the session's server connection to others between
    notifications and deliver none of them."""
    return asyncpg_dsn(settings.direct_database_url)


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The asyncpg form of a SQLAlchemy URL (``postgresql+asyncpg://`` -> ``postgresql://``)."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


class ChannelListener:
    """Listens on ``channel``; ``on_notify(payload)`` per notification, ``on_connect()`` per
    (re)connect. ``label`` prefixes its log lines."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        *,
        on_notify: Callable[[str], None],
        on_connect: Callable[[], None],
        label: str,
        connect_timeout: float = 3.0,
    ) -> None:
        self.dsn = dsn
        self.channel = channel
        self.on_notify = on_notify
        self.on_connect = on_connect
        self.label = label
        self.connect_timeout = connect_timeout
        self.connected = asyncio.Event()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.on_notify(payload)

    async def run(self) -> None:
        delay = 0.5
        while True:
            lost = asyncio.Event()
            conn: Any = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._notified)
                self.connected.set()
                self.on_connect()
                delay = 0.5
                await lost.wait()
                log.warning(f"{self.label}_listen_connection_lost")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning(f"{self.label}_listen_failed", error=str(exc), retry_in=delay)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    # Shielded: a cancelled stop must still hand the connection back cleanly.
                    await asyncio.shield(_close(conn))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _close(conn: Any) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=2)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        conn.terminate()
