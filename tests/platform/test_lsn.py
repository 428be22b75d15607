from __future__ import annotations

import pytest

from app.platform.db.lsn import int_to_lsn, lsn_to_int


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("0/3067608", 0x3067608), ("16/B374D848", (0x16 << 32) | 0xB374D848)],
)
def test_roundtrip(text: str, value: int) -> None:
    assert lsn_to_int(text) == value
    assert int_to_lsn(value) == text


@pytest.mark.parametrize("bad", ["", "0", "/1", "1/", "x/1", "123456789/0", "1/2/3"])
def test_rejects_non_lsn(bad: str) -> None:
    with pytest.raises(ValueError, match=r"WAL position|invalid literal"):
        lsn_to_int(bad)
