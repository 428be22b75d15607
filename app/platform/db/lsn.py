"""PostgreSQL WAL positions (``pg_lsn``, written ``XXXXXXXX/XXXXXXXX``) as integers."""

from __future__ import annotations


def lsn_to_int(lsn: str) -> int:
    """``'16/B374D848'`` -> byte position. Raises ``ValueError`` on anything else."""
    high, sep, low = lsn.partition("/")
    if not sep or not high or not low or len(high) > 8 or len(low) > 8:
        raise ValueError(f"not a WAL position: {lsn!r}")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(position: int) -> str:
    if position < 0 or position >= 1 << 64:
        raise ValueError(f"WAL position out of range: {position}")
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"
