"""Password hashing (argon2id) and the minimum strength rule."""

from __future__ import annotations

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.platform.config import Settings

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


class Passwords:
    """argon2id with parameters from settings; hashing runs off the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.auth_argon2_time_cost,
            memory_cost=settings.auth_argon2_memory_kib,
            parallelism=settings.auth_argon2_parallelism,
        )
        # Verified against when the email is unknown, so both paths cost one hash.
        self._dummy = self.hasher.hash("timing-equaliser-not-a-password")

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self.hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return (
                    self.hasher.verify(stored_hash or self._dummy, password)
                    and stored_hash is not None
                )
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await anyio.to_thread.run_sync(check)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)
