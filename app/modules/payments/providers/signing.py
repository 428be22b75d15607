"""Webhook signatures: ``Provider-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The signed message is ``f"{t}.{raw body}"`` under the shared webhook secret; a timestamp further
than the tolerance from now, in either direction, is refused so a captured delivery cannot be
replayed later (the inbox also drops a replayed event id).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Provider-Signature"


class SignatureError(Exception):
    """The signature header is missing, malformed, or does not match."""


class StaleTimestamp(SignatureError):
    """The signature's timestamp lies outside the tolerance."""


def compute(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a provider would send for ``body`` (tests and local tools use it)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={compute(secret, t, body)}"


def verify(
    secret: str, header: str | None, body: bytes, *, tolerance: int, now: float | None = None
) -> int:
    """The verified timestamp, or ``SignatureError``/``StaleTimestamp`` saying what is wrong."""
    if not header:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is missing")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise SignatureError("the signature timestamp is not an integer") from exc
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"the {SIGNATURE_HEADER} header needs t= and v1=")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise StaleTimestamp(
            f"the signature timestamp is more than {tolerance}s away from the server's clock"
        )
    expected = compute(secret, timestamp, body)
    # Checked after the timestamp on purpose: a stale delivery is refused even if well signed.
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("the signature does not match the body")
    return timestamp
