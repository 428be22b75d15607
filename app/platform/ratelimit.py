"""Fixed-window rate limits kept in PostgreSQL, so they hold across every app process.

Counters live in ``platform_rate_limit``; each hit is one atomic upsert on its own short
transaction, so a limit survives the request's rollback (a failed login must still count).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, text
from sqlalchemy.ext.asyncio import AsyncEngine
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


class RateLimiter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def check(self, *checks: tuple[Limit, str]) -> None:
        """Raise 429 with ``Retry-After`` when any (limit, subject) is already exhausted."""
        async with self.engine.connect() as conn:
            for limit, subject in checks:
                row = (
                    await conn.execute(
                        text(
                            "SELECT hits, ceil(extract(epoch FROM window_start "  # noqa: S608
                            "+ CAST(:w AS integer) * interval '1 second' - now())) "
                            f"FROM platform_rate_limit WHERE key = :k AND window_start = {_WINDOW}"
                        ),
                        {"k": limit.key(subject), "w": limit.window_seconds},
                    )
                ).first()
                if row is not None and row[0] >= limit.limit:
                    raise TooManyRequests(
                        f"Too many attempts; try again in {int(row[1])} seconds",
                        retry_after=int(row[1]),
                        limit=limit.name,
                    )

    async def hit(self, limit: Limit, subject: str) -> int:
        """Count one hit now; returns the hits in the current window."""
        async with self.engine.begin() as conn:
            hits = await conn.scalar(
                text(
                    "INSERT INTO platform_rate_limit (key, window_start, hits) "  # noqa: S608
                    f"VALUES (:k, {_WINDOW}, 1) "
                    "ON CONFLICT (key, window_start) "
                    "DO UPDATE SET hits = platform_rate_limit.hits + 1 RETURNING hits"
                ),
                {"k": limit.key(subject), "w": limit.window_seconds},
            )
            # Old windows are dead weight; sweep them now and then rather than on a schedule.
            if random.random() < 0.01:  # noqa: S311 - not security relevant
                await conn.execute(_SWEEP)
        return int(hits or 0)

    async def reset(self, limit: Limit, subject: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM platform_rate_limit WHERE key = :k"), {"k": limit.key(subject)}
            )
