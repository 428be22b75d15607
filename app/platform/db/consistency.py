"""Read-your-writes: the signed consistency token and each process's memory of recent writes.

The token is the primary's WAL insert position right after a request's commit: a reader that
presents it is served by the replica only once the replica has replayed that far. It is 8 bytes
of position and a truncated HMAC, base64url: 27 characters, no state on the server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

TOKEN_HEADER = "x-consistency-token"  # noqa: S105 - a header name
TOKEN_COOKIE = "consistency_token"  # noqa: S105 - a cookie name
# Where the session dependency leaves a freshly issued token for the middleware (scope state).
STATE_KEY = "consistency_token"

_LSN_BYTES = 8
_MAC_BYTES = 12
_TOKEN_CHARS = 27  # base64url of 20 bytes, unpadded


class TokenCodec:
    """Signs and verifies tokens with a key derived from the app's secret."""

    def __init__(self, secret: str) -> None:
        # A key of its own: a consistency token must never verify as anything else.
        self._key = hmac.new(secret.encode(), b"consistency-token/v1", hashlib.sha256).digest()

    def _mac(self, raw: bytes) -> bytes:
        return hmac.new(self._key, raw, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, lsn: int) -> str:
        raw = lsn.to_bytes(_LSN_BYTES, "big")
        return base64.urlsafe_b64encode(raw + self._mac(raw)).rstrip(b"=").decode()

    def decode(self, token: str) -> int | None:
        """The token's WAL position, or ``None`` for anything malformed or tampered with."""
        if len(token) != _TOKEN_CHARS:
            return None
        try:
            blob = base64.urlsafe_b64decode(token + "=")
        except (binascii.Error, ValueError):
            return None
        # Only the canonical spelling counts: the last character's spare bits would otherwise
        # let a different string decode to the same, valid, bytes.
        if base64.urlsafe_b64encode(blob).rstrip(b"=").decode() != token:
            return None
        raw, mac = blob[:_LSN_BYTES], blob[_LSN_BYTES:]
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, self._mac(raw)):
            return None
        return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class PresentedTokens:
    """What a request carried: the highest valid position, and whether anything was forged."""

    lsn: int | None = None
    invalid: bool = False

    @classmethod
    def read(cls, codec: TokenCodec, values: list[str]) -> PresentedTokens:
        positions = [codec.decode(v.strip()) for v in values if v.strip()]
        valid = [p for p in positions if p is not None]
        return cls(lsn=max(valid, default=None), invalid=len(valid) != len(positions))


class WriteMemory:
    """The last write position of each user in this process, forgotten after ``ttl`` seconds.

    Bounded: the oldest entries go first when ``max_entries`` is reached, which at worst sends a
    forgotten user's read to the replica a little early, exactly as for a client without a token.
    """

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()

    def remember(self, key: Hashable, lsn: int) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        previous = self._entries.pop(key, None)
        if previous is not None:
            lsn = max(lsn, previous[0])
        # Every entry lives equally long, so insertion order is expiry order.
        self._entries[key] = (lsn, now + self.ttl)
        while self._entries:
            oldest_key, (_, expires) = next(iter(self._entries.items()))
            if expires > now and len(self._entries) <= self.max_entries:
                break
            del self._entries[oldest_key]

    def recall(self, key: Hashable) -> int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        lsn, expires = entry
        if expires <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return lsn

    def __len__(self) -> int:
        return len(self._entries)


class WriteTrackingSession(Session):
    """The primary session's sync half: notes whether its transaction wrote anything.

    ``info["wrote"]``: a flush or an ORM-enabled INSERT/UPDATE/DELETE ran. ``info["maybe_wrote"]``:
    a textual or other statement ran that could have written; the session dependency then asks
    the server (``pg_current_xact_id_if_assigned()``) before it commits.
    """


@event.listens_for(WriteTrackingSession, "after_flush")
def _after_flush(session: Session, flush_context: UOWTransaction) -> None:
    session.info["wrote"] = True


@event.listens_for(WriteTrackingSession, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["wrote"] = True
    elif not state.is_select:
        state.session.info["maybe_wrote"] = True
