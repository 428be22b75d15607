"""Password hashing (argon2id) under a bounded queue, and the minimum strength rule."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.platform.config import Settings
from app.platform.errors import ServiceUnavailable

T = TypeVar("T")

# The few passwords every credential-stuffing list starts with; a real deployment may add a
# breached-password check (k-anonymity API) on top.
_COMMON = frozenset(
    {
        "password", "password1", "password123", "passw0rd", "123456789", "1234567890",
        "12345678910", "qwertyuiop", "qwerty123", "iloveyou", "letmein123", "welcome123",
        "admin12345", "abc1234567", "1q2w3e4r5t", "princess123", "football123", "monkey1234",
        "sunshine123", "trustno1234", "changeme123",
    }
)  # fmt: skip
MAX_LENGTH = 256  # argon2 takes any length; a bound keeps a login from becoming a CPU sink


def strength_problems(password: str, email: str, min_length: int) -> list[str]:
    """Why a password is too weak; empty when it is acceptable."""
    problems = []
    if len(password) < min_length:
        problems.append(f"must be at least {min_length} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters")
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 2:
        problems.append("must mix at least two of: lower case, upper case, digits, symbols")
    if len(set(password)) < 5:
        problems.append("must use at least 5 different characters")
    lowered = password.lower()
    local = email.split("@", 1)[0].lower()
    if lowered in _COMMON or (len(local) >= 4 and local in lowered):
        problems.append("is too easy to guess")
    return problems


class HashingBusy(ServiceUnavailable):
    slug, title = "busy", "Too busy to check passwords now"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many sign-ins are being checked at once; try again in a moment",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )


class Passwords:
    """argon2id with parameters from settings, off the event loop and bounded.

    At most ``auth_hash_concurrency`` hashes run at once (each takes a core for tens of
    milliseconds, so more would only slow them all and starve the event loop) and at most
    ``auth_hash_queue`` more wait; past that the caller gets ``HashingBusy`` (503) at once,
    rather than a queue that grows until every request times out. One per app process.
    """

    def __init__(self, settings: Settings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.auth_argon2_time_cost,
            memory_cost=settings.auth_argon2_memory_kib,
            parallelism=settings.auth_argon2_parallelism,
        )
        self.concurrency = settings.auth_hash_concurrency or os.cpu_count() or 1
        self.queue = settings.auth_hash_queue
        self._slots: anyio.CapacityLimiter | None = None
        self._admitted = 0
        self._dummy: str | None = None

    @property
    def admitted(self) -> int:
        """Hashes running or waiting now."""
        return self._admitted

    async def _run(self, work: Callable[[], T]) -> T:
        if self._admitted >= self.concurrency + self.queue:
            raise HashingBusy(retry_after=1)
        if self._slots is None:  # created on first use: it belongs to the running event loop
            self._slots = anyio.CapacityLimiter(self.concurrency)
        self._admitted += 1
        try:
            return await anyio.to_thread.run_sync(work, limiter=self._slots)
        finally:
            self._admitted -= 1

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self.hasher.hash(password))

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        def check() -> bool:
            if self._dummy is None:
                # Verified against when the email is unknown, so both paths cost one hash.
                self._dummy = self.hasher.hash("timing-equaliser-not-a-password")
            try:
                return (
                    self.hasher.verify(stored_hash or self._dummy, password)
                    and stored_hash is not None
                )
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await self._run(check)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)
