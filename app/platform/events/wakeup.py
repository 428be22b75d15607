"""Wake-up on commit: a LISTEN connection that sets an ``asyncio.Event`` on every NOTIFY."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from app.platform.observability.logging import get_logger

log = get_logger("app.events")


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The asyncpg form of a SQLAlchemy URL (``postgresql+asyncpg://`` -> ``postgresql://``)."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


class Wakeup:
    """Listens on a channel and sets ``event`` on each notification.

    It only shortens waits: a lost connection is retried in the background while the dispatcher
    keeps polling, and every (re)connect sets the event once to cover notifications missed.
    """

    def __init__(self, dsn: str, channel: str, *, connect_timeout: float = 3.0) -> None:
        self.dsn = dsn
        self.channel = channel
        self.connect_timeout = connect_timeout
        self.event = asyncio.Event()
        self.connected = asyncio.Event()

    def _notified(self, *_: Any) -> None:
        self.event.set()

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
                self.event.set()
                delay = 0.5
                await lost.wait()
                log.warning("events_listen_connection_lost")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("events_listen_failed", error=str(exc), retry_in=delay)
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
