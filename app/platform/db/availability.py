"""A database that cannot be reached answers 503 ``database-unavailable``, never a 500.

Connection refused, a connect or pool timeout, a connection lost mid-request, a server starting
up or in recovery: whichever route meets it, the client gets a problem with ``Retry-After``, the
same for every route, and the log gets one warning line (an outage is not a bug: no traceback).
Everything else the driver raises stays a 500 with its traceback logged. The handler that
answers so is the web layer's (``app/platform/web/problems.py``); what an outage is lives here.
"""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc

from app.platform.errors import ServiceUnavailable

# Short: a restart or a failover takes seconds, and a pool timeout clears as soon as requests end.
RETRY_AFTER_SECONDS = 1

# What a database failure can arrive as: SQLAlchemy's errors (the driver's wrapped, the pool's),
# the driver's own (a statement on its raw connection), the socket's, and groups of them.
CAUGHT: tuple[type[Exception], ...] = (
    sqlalchemy.exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    ExceptionGroup,
)


class DatabaseUnavailable(ServiceUnavailable):
    slug, title = "database-unavailable", "Database unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail or "The database cannot be reached at the moment; retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            retry_after=RETRY_AFTER_SECONDS,
        )


def describe(exc: BaseException) -> str:
    """One line: the error's type and the first line of its message, bounded."""
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0][:200]}" if first else type(exc).__name__
