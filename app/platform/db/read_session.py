"""``AsyncReadSession``: the read session's type, which has no way to write.

A protocol, not a class: it names the statements a read runs (``select()``, a compound select,
``text()``) on the methods a read uses, and nothing else, so ``add``, ``flush``, ``commit``,
``delete`` or an ``insert()/update()/delete()`` passed to ``execute`` are mypy errors, not a
``ReadOnlySessionError`` at run time. Both sessions satisfy it structurally: the routed read session
(``routing.RoutedReadSession``) and the primary's ``AsyncSession``, so a repository's read
function typed on it serves either, while a function that writes asks for ``AsyncSession`` and
cannot be handed the read session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar, TypeVarTuple, overload

from sqlalchemy import CompoundSelect, Result, ScalarResult, Select, TextClause
from sqlalchemy.ext.asyncio import AsyncResult
from sqlalchemy.orm.interfaces import ORMOption

_T = TypeVar("_T")
_O = TypeVar("_O")
_Ts = TypeVarTuple("_Ts")

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class AsyncReadSession(Protocol):
    """What a read may do: run a query (buffered or streamed), load one row by primary key."""

    @overload
    async def execute(
        self,
        statement: Select[*_Ts] | CompoundSelect[*_Ts],
        params: Params = ...,
        *,
        execution_options: Mapping[str, Any] = ...,
    ) -> Result[*_Ts]: ...

    @overload
    async def execute(
        self,
        statement: TextClause,
        params: Params = ...,
        *,
        execution_options: Mapping[str, Any] = ...,
    ) -> Result[*tuple[Any, ...]]: ...

    @overload
    async def scalar(
        self,
        statement: Select[_T] | CompoundSelect[_T],
        params: Params = ...,
        *,
        execution_options: Mapping[str, Any] = ...,
    ) -> _T | None: ...

    @overload
    async def scalar(
        self,
        statement: TextClause,
        params: Params = ...,
        *,
        execution_options: Mapping[str, Any] = ...,
    ) -> Any: ...

    async def scalars(
        self,
        statement: Select[_T] | CompoundSelect[_T],
        params: Params = ...,
        *,
        execution_options: Mapping[str, Any] = ...,
    ) -> ScalarResult[_T]: ...

    async def get(
        self,
        entity: type[_O],
        ident: Any,
        *,
        options: Sequence[ORMOption] | None = ...,
        populate_existing: bool = ...,
        execution_options: Mapping[str, Any] = ...,
    ) -> _O | None: ...

    async def stream(
        self,
        statement: Select[*_Ts] | CompoundSelect[*_Ts],
        params: Params = ...,
        *,
        execution_options: Mapping[str, Any] = ...,
    ) -> AsyncResult[*_Ts]: ...
