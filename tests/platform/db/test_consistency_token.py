"""The consistency token's codec and the per-process memory of writes (no database needed)."""

from __future__ import annotations

import time

import pytest

from app.platform.db.consistency import PresentedTokens, TokenCodec, WriteMemory

SECRET = "a-test-secret-that-is-long-enough-0123456789"


def test_round_trip_is_compact_and_url_safe() -> None:
    codec = TokenCodec(SECRET)
    for lsn in (0, 1, 0x16_B374D848, 2**64 - 1):
        token = codec.encode(lsn)
        assert len(token) == 27
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert codec.decode(token) == lsn


@pytest.mark.parametrize("position", range(27))
def test_any_changed_character_is_refused(position: int) -> None:
    codec = TokenCodec(SECRET)
    token = codec.encode(0x16_B374D848)
    changed = "B" if token[position] != "B" else "C"
    forged = token[:position] + changed + token[position + 1 :]
    assert codec.decode(forged) is None


@pytest.mark.parametrize("junk", ["", "abc", "x" * 27, "!" * 27, "=" * 27, "a" * 28, "é" * 27])
def test_malformed_is_refused(junk: str) -> None:
    assert TokenCodec(SECRET).decode(junk) is None


def test_another_key_is_refused() -> None:
    token = TokenCodec("another-secret-entirely-0123456789abcdef").encode(123)
    assert TokenCodec(SECRET).decode(token) is None


def test_presented_tokens_take_the_highest_and_flag_forgeries() -> None:
    codec = TokenCodec(SECRET)
    assert PresentedTokens.read(codec, []) == PresentedTokens()
    both = PresentedTokens.read(codec, [codec.encode(5), codec.encode(9)])
    assert both == PresentedTokens(lsn=9, invalid=False)
    assert PresentedTokens.read(codec, [codec.encode(5), "forged"]).invalid is True


def test_write_memory_expires_and_keeps_the_highest_position(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    memory = WriteMemory(ttl=0.2)
    memory.remember("u1", 100)
    memory.remember("u1", 50)  # an older position never lowers what the user must see
    clock[0] += 0.19
    assert memory.recall("u1") == 100
    assert memory.recall("u2") is None
    clock[0] += 0.02
    assert memory.recall("u1") is None


def test_write_memory_is_bounded() -> None:
    memory = WriteMemory(ttl=60, max_entries=3)
    for i in range(10):
        memory.remember(f"u{i}", i)
    assert len(memory) == 3
    assert memory.recall("u9") == 9
    assert memory.recall("u0") is None


def test_no_other_spelling_of_the_last_character_is_accepted() -> None:
    # 20 bytes fill 26 2/3 base64 characters: the last one has spare bits that a lenient
    # decoder ignores, which would let a changed token through.
    codec = TokenCodec(SECRET)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for lsn in (1, 0x3067608, 2**40 + 7):
        token = codec.encode(lsn)
        accepted = [c for c in alphabet if codec.decode(token[:-1] + c) is not None]
        assert accepted == [token[-1]]
