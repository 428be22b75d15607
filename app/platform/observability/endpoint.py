"""``GET /metrics``: the Prometheus scrape, open in development, behind a bearer token elsewhere."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.platform.config import Settings
from app.platform.errors import Unauthorized
from app.platform.observability.registry import multiprocess_dir, render

router = APIRouter(tags=["observability"])


def _authorized(request: Request, settings: Settings) -> bool:
    if settings.is_dev:
        return True
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value()
    # Constant time: the comparison must not tell a prober how much of the token it got right.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    )


@router.get(
    "/metrics",
    include_in_schema=False,
    summary="Prometheus metrics (text or OpenMetrics by Accept)",
)
async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if not _authorized(request, settings):
        raise Unauthorized("Scraping /metrics requires the bearer token APP_METRICS_TOKEN")
    accept = request.headers.get("accept")
    if multiprocess_dir() is None:
        # On the event loop, where requests are recorded: the HTTP collector derives some values
        # from others and needs them read with no request recorded in between (http_series.py).
        body, content_type = render(accept)
    else:
        # Merging every worker's files is file I/O: keep it off the event loop.
        body, content_type = await run_in_threadpool(render, accept)
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
