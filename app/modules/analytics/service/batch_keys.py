"""Exactly-once ingestion: an event batch's ``Idempotency-Key``, claimed with its events.

The key is optional. Given, it is stored in the batch's own transaction, so the events and the
key commit together or not at all: a retry of a stored batch is answered as the first was and
stores nothing; a retry of a batch that failed stores it. The same key with another body is a
422 problem, as checkout's is.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.modules.analytics import metrics
from app.platform.errors import BadRequest, ValidationFailed

# As long as checkout's keys: a client that retries for a day is served the first answer.
BATCH_KEY_TTL = timedelta(hours=24)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces: what clients generate


class IdempotencyKeyInvalid(BadRequest):
    slug, title = "idempotency-key-invalid", "The Idempotency-Key header is malformed"


class IdempotencyKeyReused(ValidationFailed):
    slug, title = "idempotency-key-reused", "The Idempotency-Key was used for another request"


def check_key(key: str | None) -> str | None:
    if key is not None and not _KEY.match(key):
        raise IdempotencyKeyInvalid(
            "The Idempotency-Key must be 1 to 255 printable ASCII characters without spaces"
        )
    return key


def scope_of(user_id: uuid.UUID | None, anonymous_id: str | None) -> str:
    """Whose key it is: the signed-in user, else the device."""
    return f"user:{user_id}" if user_id is not None else f"anon:{anonymous_id}"


def fingerprint(raw_events: Sequence[dict[str, Any]], anonymous_id: str | None) -> str:
    """A digest of what the batch says, independent of JSON spacing and key order."""
    canonical = json.dumps(
        {"anonymous_id": anonymous_id, "events": list(raw_events)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of presenting a key: store the batch (``stored_before`` None) or replay."""

    stored_before: int | None

    @property
    def replay(self) -> bool:
        return self.stored_before is not None


class BatchKeysRepository(Protocol):
    """The batch keys' queries (``app.modules.analytics.repository``)."""

    async def claim_batch_key(
        self,
        session: AsyncSession,
        *,
        scope: str,
        key: str,
        fingerprint: str,
        accepted: int,
        ttl: float,
    ) -> bool: ...

    async def get_batch_key(
        self, session: AsyncSession, *, scope: str, key: str
    ) -> tuple[str, int] | None: ...


async def claim(
    session: AsyncSession,
    repository: BatchKeysRepository,
    *,
    scope: str,
    key: str,
    digest: str,
    accepted: int,
) -> Claim:
    """Claim ``key`` for this batch in the session's transaction, or say what it stored before.

    Same key, same body: a replay of the stored batch's answer. Same key, other body: 422.
    """
    ttl = BATCH_KEY_TTL.total_seconds()
    if await repository.claim_batch_key(
        session, scope=scope, key=key, fingerprint=digest, accepted=accepted, ttl=ttl
    ):
        return Claim(stored_before=None)
    existing = await repository.get_batch_key(session, scope=scope, key=key)
    if existing is None:  # purged between the two statements: it had expired, so claim anew
        return await claim(
            session, repository, scope=scope, key=key, digest=digest, accepted=accepted
        )
    stored_digest, stored_accepted = existing
    if stored_digest != digest:
        metrics.BATCHES_REJECTED.labels("key_reused").inc()
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different batch; use a new key for a new batch"
        )
    metrics.BATCHES_REPLAYED.inc()
    return Claim(stored_before=stored_accepted)
