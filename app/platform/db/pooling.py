"""Connection arguments for asyncpg, direct or through a transaction-mode pooler (PgBouncer).

In transaction mode a client's consecutive transactions may run on different server
connections, and several clients share each one. Whatever a session keeps on the server past its
transaction is then lost or seen by a stranger: asyncpg's and SQLAlchemy's prepared statement
caches (``__asyncpg_stmt_1__`` of one client collides with another's on the same server), and the
startup parameters PgBouncer does not track (it refuses ``statement_timeout`` at connect).
PgBouncer 1.21 can keep protocol-level prepared statements itself (``max_prepared_statements``);
Debian bookworm ships 1.18, so the client does the work:

- no statement cache in SQLAlchemy's dialect, and none in asyncpg: with its cache off, asyncpg
  (0.29 and later) prepares even the dialect's explicit ``prepare()`` calls as the *unnamed*
  statement, so there is no name to collide and nothing left on the server for the next client.
  The price is a second Parse of each statement, sent with its Bind (asyncpg's guard against
  poolers that take a Flush for a transaction boundary). Unique names instead
  (``prepared_statement_name_func``) would parse once but leave every statement on its server
  connection until PgBouncer deallocates it (``server_reset_query_always``), which a pooler
  configured by someone else may not do;
- ``statement_timeout`` rides on every ``BEGIN``, as ``SET LOCAL`` in the same round trip.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import asyncpg

from app.platform.config import Settings


def connect_args(settings: Settings, *, application_name: str) -> dict[str, Any]:
    """asyncpg's connect arguments (through SQLAlchemy's dialect) for one engine of the app."""
    server_settings = {"application_name": application_name, "timezone": "UTC"}
    args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        "server_settings": server_settings,
    }
    if not settings.db_transaction_pooler:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
        return args
    args.update(
        statement_cache_size=0,
        prepared_statement_cache_size=0,
        connection_class=per_transaction_timeout(settings.db_statement_timeout_ms),
    )
    return args


@lru_cache
def per_transaction_timeout(timeout_ms: int) -> type[Any]:
    """An asyncpg connection class whose every top-level ``BEGIN`` also sets the statement
    timeout for that transaction (``SET LOCAL``: it ends with the transaction, so the server
    connection goes back to the pool as it came)."""
    suffix = f" SET LOCAL statement_timeout = {int(timeout_ms)};"

    class PerTransactionTimeout(asyncpg.Connection):  # type: ignore[misc]
        async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
            # asyncpg's Transaction.start() sends "BEGIN ...;" alone, by the simple protocol,
            # which runs several statements in one message: no extra round trip.
            if not args and query.startswith("BEGIN") and query.endswith(";"):
                query += suffix
            result: str = await super().execute(query, *args, timeout=timeout)
            return result

    return PerTransactionTimeout
