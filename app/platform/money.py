"""ISO 4217 currencies and their minor units, and amounts in minor units formatted for people.

The table is Babel's (CLDR), not one kept by hand: the set is every currency some territory holds
as legal tender today, and a currency's minor units are CLDR's digits (``KWD`` 3, ``JPY`` 0,
``EUR`` 2). Amounts travel as integers of minor units everywhere; only this module turns them
into text.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache

from babel.core import get_global
from babel.numbers import format_currency, get_currency_precision, get_territory_currencies

DEFAULT_LOCALE = "en"
# Digits first and the ISO code after (``1,500.000 KWD``): unambiguous in every locale, unlike
# symbols ("$" is a dozen currencies), and the shape receipts and notices already used.
_PATTERN = "#,##0.00 ¤¤"


@cache
def currencies() -> frozenset[str]:
    """The ISO 4217 codes in use today (legal tender somewhere)."""
    codes: set[str] = set()
    for territory in get_global("territory_currencies"):
        codes.update(get_territory_currencies(territory, tender=True))
    return frozenset(codes)


def is_currency(code: str) -> bool:
    return code in currencies()


class UnknownCurrency(ValueError):
    def __init__(self, code: str) -> None:
        super().__init__(f"'{code}' is not an ISO 4217 currency in use")


def minor_units(code: str) -> int:
    """How many decimal digits the currency's minor unit has (``KWD`` 3, ``JPY`` 0)."""
    if not is_currency(code):
        raise UnknownCurrency(code)
    return int(get_currency_precision(code))


def to_major(amount: int, code: str) -> Decimal:
    """``amount`` minor units as an exact decimal of major units (1500 KWD -> 1.500)."""
    return Decimal(amount).scaleb(-minor_units(code))


def format_money(amount: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """``amount`` minor units of ``currency`` for people: ``format_money(1500, "KWD")`` is
    ``1.500 KWD``, ``(2500, "EUR")`` ``25.00 EUR``, ``(500, "JPY")`` ``500 JPY``."""
    code = currency.upper()
    return format_currency(
        to_major(amount, code), code, format=_PATTERN, locale=locale, currency_digits=True
    )
