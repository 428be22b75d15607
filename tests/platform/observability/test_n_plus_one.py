"""The N+1 detector on a planted lazy loop and its eager twin; query budgets with max_queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import ForeignKey, insert, select, text
from sqlalchemy.ext.asyncio import AsyncAttrs, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from app.main import create_app
from app.platform.db import Database
from app.platform.observability.context import observe
from app.platform.observability.sql import NPlusOneDetected
from app.platform.web.sessions import PrimarySession
from tests.helpers import asgi_client, make_settings, max_queries, started
from tests.platform.observability.samples import value
from tools.pgstack import Stack

MODULE = "app.modules.notifications.router"
AUTHORS = 6  # one more than the threshold: the detector must still warn only once


class _Base(AsyncAttrs, DeclarativeBase):
    pass


class Author(_Base):
    __tablename__ = "obs_test_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    books: Mapped[list[Book]] = relationship(back_populates="author", lazy="select")


class Book(_Base):
    __tablename__ = "obs_test_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("obs_test_author.id"))
    title: Mapped[str]
    author: Mapped[Author] = relationship(back_populates="books")


@pytest.fixture(scope="module")
def library(migrated: Stack) -> Iterator[None]:
    import asyncio

    async def setup(create: bool) -> None:
        engine = create_async_engine(migrated.primary_url)
        async with engine.begin() as conn:
            await conn.run_sync(_Base.metadata.drop_all)
            if create:
                await conn.run_sync(_Base.metadata.create_all)
                for a in range(1, AUTHORS + 1):
                    await conn.execute(insert(Author), {"id": a, "name": f"a{a}"})
                    await conn.execute(
                        insert(Book),
                        [{"author_id": a, "title": f"b{a}.{n}"} for n in (1, 2)],
                    )
        await engine.dispose()

    asyncio.run(setup(create=True))
    yield
    asyncio.run(setup(create=False))


async def lazy_titles(session: PrimarySession) -> dict[str, int]:
    authors = (await session.scalars(select(Author).order_by(Author.id))).all()
    total = 0
    for author in authors:
        total += len(await author.awaitable_attrs.books)  # one SELECT per author: the N+1
    return {"books": total}


async def eager_titles(session: PrimarySession) -> dict[str, int]:
    query = select(Author).options(selectinload(Author.books)).order_by(Author.id)
    authors = (await session.scalars(query)).all()
    return {"books": sum(len(author.books) for author in authors)}


lazy_titles.__module__ = eager_titles.__module__ = MODULE


def _mount(app: FastAPI) -> FastAPI:
    app.add_api_route("/v1/books/lazy", lazy_titles, methods=["GET"])
    app.add_api_route("/v1/books/eager", eager_titles, methods=["GET"])
    return app


def _detected(route: str) -> float:
    return value("db_n_plus_one_total", module="notifications", route=route)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(r.msg)
        for r in caplog.records
        if r.name == "app.db" and isinstance(r.msg, dict) and r.msg.get("event") == "n_plus_one"
    ]


async def test_strict_mode_fails_the_lazy_loop(
    library: None, app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    _mount(app)
    before = _detected("/v1/books/lazy")
    resp = await client.get("/v1/books/lazy")
    assert resp.status_code == 500, resp.text
    assert _detected("/v1/books/lazy") == before + 1
    (warning,) = _warnings(caplog)
    assert warning["route"] == "/v1/books/lazy"
    assert warning["module"] == "notifications"
    assert warning["statement"].startswith("SELECT obs_test_book.id")
    assert "WHERE ? = obs_test_book.author_id" in warning["statement"]


async def test_eager_version_stays_quiet_within_its_budget(
    library: None, app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    _mount(app)
    before = _detected("/v1/books/eager")
    with max_queries(2) as ran:
        resp = await client.get("/v1/books/eager")
    assert resp.status_code == 200
    assert resp.json() == {"books": AUTHORS * 2}
    assert ran.count == 2  # the authors, then their books in one IN query
    assert _detected("/v1/books/eager") == before
    assert _warnings(caplog) == []


@pytest.fixture
async def lenient_app(migrated: Stack) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(migrated, db_n_plus_one_strict=False))
    async with started(application):
        yield _mount(application)


async def test_lenient_mode_counts_and_warns_once(
    library: None, lenient_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    before = _detected("/v1/books/lazy")
    async with asgi_client(lenient_app, raise_app_exceptions=True) as client:
        resp = await client.get("/v1/books/lazy")
    assert resp.status_code == 200
    assert resp.json() == {"books": AUTHORS * 2}
    assert _detected("/v1/books/lazy") == before + 1
    assert len(_warnings(caplog)) == 1


async def test_event_deliveries_are_watched_too(library: None, app: FastAPI) -> None:
    db: Database = app.state.db
    route = "listener:count_books"
    before = _detected(route)

    async def deliver() -> None:
        async with db.session() as session:
            with observe("notifications", route, kind="event"):
                for author in (await session.scalars(select(Author))).all():
                    await author.awaitable_attrs.books

    with pytest.raises(NPlusOneDetected):
        await deliver()
    assert _detected(route) == before + 1


async def test_max_queries_fails_when_exceeded(app: FastAPI) -> None:
    db: Database = app.state.db

    async def run(count: int) -> None:
        async with db.primary.connect() as conn:
            for n in range(1, count + 1):
                await conn.execute(text(f"SELECT {n}"))

    with max_queries(2) as ran:
        await run(2)
    assert ran.count == 2
    with pytest.raises(AssertionError, match=r"at most 2 queries, 3 ran") as err, max_queries(2):
        await run(3)
    assert "3. SELECT 3" in str(err.value)


async def test_max_queries_counts_the_requests_made_in_the_block(
    library: None, app: FastAPI, client: httpx.AsyncClient
) -> None:
    _mount(app)
    with pytest.raises(AssertionError, match=r"at most 1 queries, 2 ran"), max_queries(1):
        await client.get("/v1/books/eager")
