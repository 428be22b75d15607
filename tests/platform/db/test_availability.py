"""Which failures are "the database cannot be reached" (503), and which stay bugs (500)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
import sqlalchemy.exc
from fastapi import APIRouter
from sqlalchemy import text

from app.main import create_app
from app.platform.config import Settings
from app.platform.db.failures import is_node_failure, is_unavailable
from app.platform.security import create_access_token
from app.platform.web.sessions import PrimarySession
from tests.helpers import serving


async def test_an_exhausted_pool_answers_503_with_retry_after(settings: Settings) -> None:
    tight = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_seconds": 0.5}
    )
    app = create_app(tight)
    token = create_access_token(tight, uuid.uuid4(), ["member"])
    async with serving(app) as client:
        auth = {"authorization": f"Bearer {token}"}
        assert (await client.get("/v1/orders", headers=auth)).status_code == 200
        # The pool's one connection, held elsewhere for the length of the request.
        async with app.state.db.primary.connect() as held:
            await held.execute(text("SELECT 1"))
            resp = await client.get("/v1/orders", headers=auth)
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"] == "1"
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["type"] == "/problems/database-unavailable"
        assert resp.json()["instance"] == "/v1/orders"
        # Released, it serves again.
        assert (await client.get("/v1/orders", headers=auth)).status_code == 200


async def test_a_query_error_stays_a_500(settings: Settings, migrated: object) -> None:
    """A bug in a statement is no outage: it must not hide behind a 503."""
    app = create_app(settings)
    router = APIRouter()

    @router.get("/_test/bad-sql")
    async def bad_sql(session: PrimarySession) -> None:
        await session.execute(text("SELECT * FROM no_such_table"))

    app.include_router(router)
    async with serving(app) as client:
        resp = await client.get("/_test/bad-sql")
    assert resp.status_code == 500
    assert resp.json()["type"] == "/problems/internal-error"


def _raised_in_driver() -> OSError:
    try:
        # A frame of the driver's own module on the way: what a refused connect looks like.
        exec(  # noqa: S102
            compile("raise ConnectionRefusedError(111, 'refused')", "asyncpg_fake", "exec"),
            {"__name__": "asyncpg.connect_utils"},
        )
    except OSError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "unavailable", "node_failure"),
    [
        (sqlalchemy.exc.TimeoutError("QueuePool limit reached"), True, True),
        (_raised_in_driver(), True, True),
        (ConnectionRefusedError(111, "refused, but not by the database"), False, False),
        (
            asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
            True,
            True,
        ),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True, True),
        (asyncpg.exceptions.TooManyConnectionsError("too many clients"), True, True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"), True, True),
        (asyncpg.exceptions.SerializationError("recovery conflict"), False, True),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), False, False),
        (asyncpg.exceptions.UndefinedTableError("no such table"), False, False),
        (ExceptionGroup("all down", [sqlalchemy.exc.TimeoutError("pool")]), True, True),
        (
            ExceptionGroup("mixed", [sqlalchemy.exc.TimeoutError("pool"), ValueError()]),
            False,
            False,
        ),
        (ValueError("a bug"), False, False),
    ],
)
def test_classification(exc: BaseException, unavailable: bool, node_failure: bool) -> None:
    assert is_unavailable(exc) is unavailable
    assert is_node_failure(exc) is node_failure


def test_a_wrapped_driver_error_is_classified_by_its_cause() -> None:
    cause = asyncpg.exceptions.CannotConnectNowError("the database system is in recovery mode")
    wrapped = sqlalchemy.exc.DBAPIError("SELECT 1", None, cause)
    assert is_unavailable(wrapped)
    wrapped = sqlalchemy.exc.DBAPIError(
        "SELECT 1", None, asyncpg.exceptions.UniqueViolationError("dup")
    )
    assert not is_unavailable(wrapped)
