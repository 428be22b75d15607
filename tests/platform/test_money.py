"""Money: ISO 4217 currencies and their minor units from Babel's CLDR data, never two decimals
for all."""

from __future__ import annotations

import pytest

from app.platform.money import UnknownCurrency, currencies, format_money, minor_units


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1500, "KWD", "1.500 KWD"),  # three decimals: 1.5 dinars, not 15.00
        (1, "BHD", "0.001 BHD"),
        (500, "JPY", "500 JPY"),  # no minor unit
        (2500, "EUR", "25.00 EUR"),
        (123456789, "usd", "1,234,567.89 USD"),
        (-250, "EUR", "-2.50 EUR"),
    ],
)
def test_amounts_use_the_currency_s_minor_units(amount: int, currency: str, text: str) -> None:
    assert format_money(amount, currency) == text


def test_minor_units_come_from_the_currency() -> None:
    assert (minor_units("KWD"), minor_units("EUR"), minor_units("JPY")) == (3, 2, 0)


@pytest.mark.parametrize("code", ["QQQ", "XRP", "EURO", "DEM"])  # made up, crypto, typo, retired
def test_codes_that_are_not_currencies_in_use_are_refused(code: str) -> None:
    assert code not in currencies()
    with pytest.raises(UnknownCurrency):
        format_money(100, code)


def test_the_set_is_the_currencies_in_use() -> None:
    assert {"EUR", "USD", "GBP", "JPY", "KWD", "CHF", "INR"} <= currencies()
    assert 140 < len(currencies()) < 200
