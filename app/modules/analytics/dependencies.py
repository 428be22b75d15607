"""FastAPI dependencies of analytics: ingestion limits, the report window, session and bulkhead."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from app.modules.analytics import service
from app.platform.config import Settings
from app.platform.db import AsyncReadSession, Database
from app.platform.schema import Moment
from app.platform.web.sessions import PrimarySession, ReadSession

# Every dependency here is ``async def``: FastAPI runs a plain ``def`` dependency in its thread
# pool, and that hop (a thread wake-up and two GIL hand-overs) is what a request waits longest
# for on a busy machine, far longer than the few microseconds of work these do.


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _limits(request: Request) -> service.IngestLimits:
    return service.IngestLimits.from_settings(_settings(request))


Limits = Annotated[service.IngestLimits, Depends(_limits)]


async def _batch_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description=(
                "optional: a unique key per batch (e.g. a UUID); a retry reuses it and the batch "
                "is stored once"
            ),
        ),
    ] = None,
) -> str | None:
    return service.check_key(key)


BatchKey = Annotated[str | None, Depends(_batch_key)]


def _isolated(settings: Settings) -> bool:
    return settings.analytics_report_isolation == "bulkhead"


@dataclass(frozen=True, slots=True)
class ReportWindow:
    start: datetime
    end: datetime
    timeout_ms: int | None  # None: no report-specific statement timeout (isolation "none")


async def _window(
    request: Request,
    start: Annotated[
        Moment,
        Query(alias="from", description="inclusive start, RFC 3339 with a time zone"),
    ],
    end: Annotated[
        Moment, Query(alias="to", description="exclusive end, RFC 3339 with a time zone")
    ],
) -> ReportWindow:
    settings = _settings(request)
    service.check_window(start, end, settings)
    timeout = settings.analytics_report_statement_timeout_ms if _isolated(settings) else None
    return ReportWindow(start, end, timeout)


Window = Annotated[ReportWindow, Depends(_window)]


def _bulkhead(request: Request) -> service.Bulkhead | None:
    """The process's report bulkhead (one per app, created on first use); None without one."""
    state = request.app.state
    bulkhead: service.Bulkhead | None = getattr(state, "analytics_report_bulkhead", None)
    if bulkhead is None:
        settings = _settings(request)
        if not _isolated(settings):
            return None
        bulkhead = service.Bulkhead(settings.analytics_report_max_concurrency)
        state.analytics_report_bulkhead = bulkhead
    return bulkhead


def report_slot(report: str) -> Any:
    """A dependency holding one bulkhead slot for the handler's run (503 when none is free).

    Declare it after the caller's authentication and the window's validation, so that neither
    a stranger nor a bad request takes a slot, and before the report's session.
    """

    async def slot(request: Request) -> AsyncIterator[None]:
        bulkhead = _bulkhead(request)
        if bulkhead is None:
            yield
            return
        async with bulkhead.slot(report):
            yield

    slot.__name__ = f"report_slot_{report}"
    dependency: Callable[..., Any] = slot
    # scope="function": the slot is free as soon as the handler returns, not after the response.
    return Depends(dependency, scope="function")


async def _report_session(request: Request, read: ReadSession) -> AsyncIterator[AsyncReadSession]:
    """The read session (replica-routed); with isolation "none", a session on the primary.

    The read session is only a promise until its first statement, so the unused one of the
    "none" path costs no connection.
    """
    if _isolated(_settings(request)):
        yield read
        return
    db: Database = request.app.state.db
    # The "before" of the benchmark and the workshop: the same engine and pool as checkout.
    async with db.session() as session:
        try:
            yield session
        finally:
            await session.rollback()


ReportSession = Annotated[AsyncReadSession, Depends(_report_session, scope="function")]


async def _reports(session: ReportSession) -> service.ReportsService:
    return service.ReportsService(session)


async def _ingestion(session: PrimarySession) -> service.IngestionService:
    return service.IngestionService(session)


Reports = Annotated[service.ReportsService, Depends(_reports)]
Ingestion = Annotated[service.IngestionService, Depends(_ingestion)]


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class BulkheadRoute(APIRoute):
    """A report route that refuses at once, before FastAPI solves any dependency, when the
    bulkhead is full.

    A refusal then costs a dictionary lookup and a small JSON body: no token verification, no
    query parsing, no session, no connection. A full bulkhead therefore answers a stranger 503
    too (instead of 401), which tells it nothing. The slot itself is still taken by
    ``report_slot`` after authentication and validation; when the last slot goes between the
    two checks, that dependency refuses, still before any database work.
    """

    def get_route_handler(self) -> Handler:
        handler: Handler = super().get_route_handler()
        report = self.name.removesuffix("_report")

        async def guarded(request: Request) -> Response:
            bulkhead = _bulkhead(request)
            if bulkhead is not None and bulkhead.full:
                bulkhead.refuse(report)
            return await handler(request)

        return guarded
