"""Which database errors mean "the server cannot be reached", as opposed to "this query failed".

One classification for every caller: the read session falls back to the primary on it, the
platform answers 503 instead of 500 on it, the sessions' cleanup swallows it.
"""

from __future__ import annotations

import sqlalchemy.exc

# SQLSTATEs of the server, not of the statement: class 08 (connection exceptions) is matched by
# prefix; admin shutdown, crash shutdown, cannot connect now (starting up, in recovery, shutting
# down) and too many connections.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# A recovery conflict cancels one query on a replica that is otherwise fine: worth running the
# read elsewhere, but on the primary it is an ordinary serialization failure.
_REPLICA_SQLSTATES = frozenset({"40001"})
# Where an OSError or TimeoutError must come from to be the database's: the driver or the pool.
_DRIVER_MODULES = ("asyncpg", "sqlalchemy")
_MAX_CHAIN = 8


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database server is unreachable, restarting or out of
    connections (connection refused or lost, pool timeout, server in recovery...)."""
    return _classify(exc, _UNAVAILABLE_SQLSTATES)


def is_node_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a replica failing (worth running the read elsewhere), not the query."""
    return _classify(exc, _UNAVAILABLE_SQLSTATES | _REPLICA_SQLSTATES)


def _classify(exc: BaseException, sqlstates: frozenset[str]) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_classify(inner, sqlstates) for inner in exc.exceptions)
    seen: BaseException | None = exc
    # The driver's error is often the cause of what reaches us (a DBAPIError, a pool error).
    for _ in range(_MAX_CHAIN):
        if seen is None:
            return False
        verdict = _one(seen, sqlstates)
        if verdict is not None:
            return verdict
        seen = seen.__cause__
    return False


def _one(exc: BaseException, sqlstates: frozenset[str]) -> bool | None:
    """True or False when ``exc`` decides; None to look at its cause."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # the pool had no connection to give
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        if orig is not None and (state := _sqlstate(orig)) is not None:
            return state.startswith("08") or state in sqlstates
        if isinstance(orig, OSError):  # TimeoutError included
            return True
        if isinstance(exc, sqlalchemy.exc.InterfaceError):  # "connection is closed"
            return True
        return None
    state = _sqlstate(exc)
    if state is not None:  # the driver's own error, raised through its connection directly
        return state.startswith("08") or state in sqlstates
    if isinstance(exc, OSError):  # refused, reset, connect timeout: from the driver only
        return _raised_by_driver(exc)
    return None


def _sqlstate(exc: BaseException) -> str | None:
    # asyncpg's errors carry ``sqlstate``; SQLAlchemy's adapted ones carry it too, or ``pgcode``.
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def _raised_by_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False
