"""Fixed-window rate limits kept in PostgreSQL, so they hold across every app process.

Counters live in ``platform_rate_limit``. An attempt is counted before the work it guards, in
one short transaction of its own that increments every counter it touches and rolls all of them
back when any would pass its limit: N parallel attempts let at most the limit through, and an
attempt refused by one limit costs nothing against the others (a guesser stopped by the tight
per-(account, address) limit does not use up the account's looser limit for its owner). The
counters survive the request's rollback: a failed login must still count.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from math import ceil

from sqlalchemy import DateTime, Integer, String, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.db.base import Base
from app.platform.errors import TooManyRequests


class RateLimitBucket(Base):
    __tablename__ = "platform_rate_limit"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False)


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` hits per ``window_seconds`` for each subject of ``name``."""

    name: str
    limit: int
    window_seconds: int

    def key(self, subject: str) -> str:
        return f"{self.name}:{subject}"[:300]


_SWEEP = text("DELETE FROM platform_rate_limit WHERE window_start < now() - interval '1 day'")
_WINDOW = (
    "to_timestamp(floor(extract(epoch FROM now()) / CAST(:w AS integer)) * CAST(:w AS integer))"
)
_UNCOUNT = text(
    "UPDATE platform_rate_limit SET hits = hits - 1 "  # noqa: S608
    f"WHERE key = :k AND window_start = {_WINDOW} AND hits > 0"
)
_CLEAR = text("DELETE FROM platform_rate_limit WHERE key = :k")

Check = tuple[Limit, str]


class RateLimiter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def consume(self, *checks: Check) -> None:
        """Count one attempt against every (limit, subject), or against none and raise 429.

        One statement counts them all, taking the rows in key order (concurrent attempts on
        overlapping subjects queue on the same row locks instead of deadlocking), so a row is
        locked for one round trip: bursts on one account queue briefly, never for long.
        """
        by_key = {limit.key(subject): limit for limit, subject in checks}
        keys = sorted(by_key)
        rows = ", ".join(
            f"(:k{i}, to_timestamp(floor(extract(epoch FROM now()) / CAST(:w{i} AS integer)) "
            f"* CAST(:w{i} AS integer)), 1)"
            for i in range(len(keys))
        )
        params: dict[str, object] = {f"k{i}": k for i, k in enumerate(keys)}
        params.update({f"w{i}": by_key[k].window_seconds for i, k in enumerate(keys)})
        count = text(
            f"INSERT INTO platform_rate_limit (key, window_start, hits) VALUES {rows} "  # noqa: S608
            "ON CONFLICT (key, window_start) DO UPDATE SET hits = platform_rate_limit.hits + 1 "
            "RETURNING key, hits, extract(epoch FROM window_start - now())::float"
        )
        async with self.engine.connect() as conn, conn.begin() as tx:
            refused = [
                (by_key[key], by_key[key].window_seconds + ceil(started))
                for key, hits, started in (await conn.execute(count, params)).all()
                if hits > by_key[key].limit
            ]
            if refused:
                await tx.rollback()
                limit, retry_after = max(refused, key=lambda r: r[1])
                raise TooManyRequests(
                    f"Too many attempts; try again in {max(1, retry_after)} seconds",
                    retry_after=retry_after,
                    limit=limit.name,
                )
            await _maybe_sweep(conn)

    async def give_back(self, *checks: Check, clear: Iterable[Check] = ()) -> None:
        """Undo one counted attempt on each of ``checks`` and clear ``clear`` entirely.

        For attempts that turned out not to be what the limit guards (a login with the right
        password is not a failure) or that were never tried (the server was too busy).
        """
        async with self.engine.begin() as conn:
            for limit, subject in checks:
                await conn.execute(_UNCOUNT, {"k": limit.key(subject), "w": limit.window_seconds})
            for limit, subject in clear:
                await conn.execute(_CLEAR, {"k": limit.key(subject)})


async def _maybe_sweep(conn: AsyncConnection) -> None:
    # Old windows are dead weight; sweep them now and then rather than on a schedule.
    if random.random() < 0.01:  # noqa: S311 - not security relevant
        await conn.execute(_SWEEP)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """Addresses or CIDR ranges (``10.0.0.0/8``, ``::1``) as networks; ValueError when bad."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address a request came from, as far as it can be believed.

    ``X-Forwarded-For`` is read only when the peer is one of our ``trusted`` proxies, and then
    from the right: each trusted hop is skipped, and the first address no trusted proxy vouches
    for is the client (anything further left was written by the client and proves nothing).
    """
    if peer is None:
        return "unknown"
    if not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_trusted(value: str, trusted: Sequence[Network]) -> bool:
    if not trusted:
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address in network for network in trusted)
