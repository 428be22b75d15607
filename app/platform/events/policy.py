"""How deliveries are paced: timeouts, attempts, backoff with jitter, retention."""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.platform.config import Settings
from app.platform.events.types import Event, Listener


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    # Lanes running at once; each runs up to ``batch_size`` claimed deliveries one after
    # another in one transaction (a savepoint each). 1 = a transaction per delivery. Kept under
    # 64 (PostgreSQL's cache of subtransactions per transaction) with room for listeners' own.
    concurrency: int = 16
    batch_size: int = 16
    poll_interval_seconds: float = 1.0
    timeout_seconds: float = 30.0
    max_attempts: int = 10
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 600.0
    retention_seconds: float = 7 * 24 * 3600.0
    prune_interval_seconds: float = 600.0
    gauge_interval_seconds: float = 5.0
    # Past its timeout a running attempt's claim stays this much longer before another
    # dispatcher may take the delivery over (the time to record the timeout itself).
    lease_grace_seconds: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            concurrency=settings.events_concurrency,
            poll_interval_seconds=settings.events_poll_interval_seconds,
            timeout_seconds=settings.events_listener_timeout_seconds,
            max_attempts=settings.events_max_attempts,
            backoff_base_seconds=settings.events_backoff_base_seconds,
            backoff_max_seconds=settings.events_backoff_max_seconds,
            retention_seconds=settings.events_retention_hours * 3600.0,
            prune_interval_seconds=settings.events_prune_interval_seconds,
        )

    def timeout_for(self, listener: Listener[Event]) -> float:
        return listener.timeout_seconds or self.timeout_seconds

    def max_attempts_for(self, listener: Listener[Event]) -> int:
        return listener.max_attempts or self.max_attempts

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds before the attempt after ``attempt`` (1-based).

        Exponential, capped, with "equal jitter": at least half the step, so listeners failing
        together spread out but a retry never comes back sooner than the backoff promises.
        """
        step = min(self.backoff_max_seconds, self.backoff_base_seconds * 2.0 ** (attempt - 1))
        return step / 2 + (rng or _RNG).random() * step / 2


_RNG = random.Random()  # noqa: S311 - jitter, not cryptography
