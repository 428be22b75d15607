"""Marking done, many per statement, deliveries whose listener left no database work."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import Integer, Uuid, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

# Fenced like the single mark: only the attempt that holds the claim may mark it.
_MARK_DONE_MANY = text(
    """
    UPDATE platform_event_delivery AS d
    SET status = 'done', finished_at = now(), last_error = NULL
    FROM unnest(:ids, :attempts) AS claimed(id, attempt)
    WHERE d.id = claimed.id AND d.attempts = claimed.attempt AND d.status = 'pending'
    RETURNING d.id
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("attempts", type_=ARRAY(Integer)))


class DoneMarker:
    """Marks done, many per statement, the deliveries whose listener left no work to commit.

    Whatever queues up while one statement runs goes into the next: under load the batches
    grow by themselves, and an idle dispatcher still marks a lone delivery at once.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._queue: list[tuple[uuid.UUID, int, asyncio.Future[bool]]] = []
        self._queued = asyncio.Event()

    async def mark(self, delivery_id: uuid.UUID, attempt: int) -> bool:
        """True once marked; False when a newer attempt superseded this one."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((delivery_id, attempt, future))
        self._queued.set()
        return await future

    async def run(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            params = {"ids": [i for i, _, _ in batch], "attempts": [a for _, a, _ in batch]}
            try:
                async with self.engine.begin() as conn:
                    marked = set((await conn.execute(_MARK_DONE_MANY, params)).scalars())
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for delivery_id, _, future in batch:
                if not future.done():
                    future.set_result(delivery_id in marked)
