"""Wake-up on commit: a LISTEN connection that sets an ``asyncio.Event`` on every NOTIFY."""

from __future__ import annotations

import asyncio

from app.platform.listen import ChannelListener, asyncpg_dsn

__all__ = ["Wakeup", "asyncpg_dsn"]


class Wakeup(ChannelListener):
    """Listens on a channel and sets ``event`` on each notification.

    It only shortens waits: a lost connection is retried in the background while the dispatcher
    keeps polling, and every (re)connect sets the event once to cover notifications missed.
    """

    def __init__(self, dsn: str, channel: str, *, connect_timeout: float = 3.0) -> None:
        self.event = asyncio.Event()
        super().__init__(
            dsn,
            channel,
            on_notify=lambda _payload: self.event.set(),
            on_connect=self.event.set,
            label="events",
            connect_timeout=connect_timeout,
        )
