"""FastAPI dependencies of analytics: ingestion limits, the report window and bulkhead slots."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from app.modules.analytics import service
from app.platform.config import Settings
from app.platform.schema import Moment


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _limits(request: Request) -> service.IngestLimits:
    return service.IngestLimits.from_settings(_settings(request))


Limits = Annotated[service.IngestLimits, Depends(_limits)]


@dataclass(frozen=True, slots=True)
class ReportWindow:
    start: datetime
    end: datetime
    timeout_ms: int


def _window(
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
    return ReportWindow(start, end, settings.analytics_report_statement_timeout_ms)


Window = Annotated[ReportWindow, Depends(_window)]


def _bulkhead(request: Request) -> service.Bulkhead:
    """The process's report bulkhead (one per app, created on first use)."""
    state = request.app.state
    bulkhead: service.Bulkhead | None = getattr(state, "analytics_report_bulkhead", None)
    if bulkhead is None:
        bulkhead = service.Bulkhead(_settings(request).analytics_report_max_concurrency)
        state.analytics_report_bulkhead = bulkhead
    return bulkhead


def report_slot(report: str) -> Any:
    """A dependency holding one bulkhead slot for the handler's run (503 when none is free).

    Declare it after the caller's authentication and the window's validation, so that neither
    a stranger nor a bad request takes a slot, and before the read session is used.
    """

    async def slot(request: Request) -> AsyncIterator[None]:
        async with _bulkhead(request).slot(report):
            yield

    slot.__name__ = f"report_slot_{report}"
    dependency: Callable[..., Any] = slot
    # scope="function": the slot is free as soon as the handler returns, not after the response.
    return Depends(dependency, scope="function")
