"""The shared request-schema kit: a strict base for JSON bodies and the types every module uses.

JSON bodies are parsed strictly: where an integer is due, ``"3"``, ``2.0`` and ``true`` are
refused, and where a boolean is due, ``0`` and ``"true"`` are (pydantic's strict mode; FastAPI
validates the decoded body in Python mode, where strict also refuses strings for UUIDs and
datetimes, so those two are re-admitted from text by ``Id`` and ``Moment``). Every integer that
reaches SQL is bounded by what its column holds (``Int32``, ``Int64`` and the types built on
them), every datetime must be representable in UTC (PostgreSQL stores timestamptz in UTC), and
the untyped parts of a body (free-form ``properties``) may hold neither a non-finite number nor
an integer past 64 bits. NUL characters are refused for every request before any of this runs
(``middleware.py``): PostgreSQL text cannot hold them.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)

from app.platform.money import UnknownCurrency, is_currency

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

Int32 = Annotated[int, Field(ge=-(2**31), le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
# Amounts in minor units: a bigint column, well below its limit so that sums of lines stay in it.
MAX_AMOUNT = 10**12
Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT, description="minor units of the currency")]


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 is a year before 1 in UTC
        raise ValueError("the moment is outside the representable range in UTC") from exc


# Lax on purpose: JSON has no UUID or datetime type, so text is what arrives.
Id = Annotated[uuid.UUID, Strict(False)]
Moment = Annotated[AwareDatetime, Strict(False), AfterValidator(_utc)]


def _currency(value: str) -> str:
    code = value.upper()
    if not is_currency(code):
        raise UnknownCurrency(value)
    return code


Currency = Annotated[
    str,
    StringConstraints(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$"),
    AfterValidator(_currency),
    Field(description="ISO 4217 code in use, e.g. EUR", examples=["EUR"]),
]


def _unsafe(value: Any, path: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str] | None:
    """The first value under ``value`` no column could hold (where, why), or None."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return path, "integers must fit in 64 bits"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return path, "numbers must be finite"
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _unsafe(item, (*path, key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unsafe(item, (*path, index))
            if found:
                return found
    return None


class RequestBody(BaseModel):
    """The base of every JSON request body: strict, closed, and storable."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    # A body whose free-form parts its service checks itself (reporting each bad item by its
    # index, say) turns the generic check off; it must then refuse what no column can hold.
    check_storable: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        found = _unsafe(data, ()) if cls.check_storable else None
        if found:
            where, why = found
            raise ValueError(f"{why} (at {'.'.join(map(str, where)) or 'the body'})")
        return data


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a keyset-paginated list; pass ``next_cursor`` back as ``?cursor=``."""

    items: list[T]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null on the last page"
    )
