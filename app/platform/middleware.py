"""Pure ASGI middleware of the platform: request ids and the request body size limit."""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.errors import AppError, PayloadTooLarge, problem_response

REQUEST_ID_HEADER = "x-request-id"
log = structlog.stdlib.get_logger("app.errors")
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIdMiddleware:
    """Accept a sane incoming ``X-Request-ID`` or make one; echo it; bind it to every log line.

    Being the outermost platform middleware, it also turns an unhandled exception into a 500
    problem that still carries the request id, and logs the traceback once, with that id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception(
                    "unhandled exception", path=scope.get("path"), method=scope.get("method")
                )
                if started:
                    raise  # mid-response: the server can only drop the connection
                response = problem_response(
                    None,
                    status=AppError.status,
                    slug=AppError.slug,
                    title=AppError.title,
                    instance=scope.get("path", ""),
                    request_id=request_id,
                )
                await response(scope, receive, send_with_id)


class BodySizeLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, by Content-Length up front or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = problem_response(
                None,
                status=PayloadTooLarge.status,
                slug=PayloadTooLarge.slug,
                title=PayloadTooLarge.title,
                detail=self._detail(),
                instance=scope.get("path", ""),
                request_id=scope.get("state", {}).get("request_id"),
            )
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's body read, so the app's handlers render it.
                    raise StarletteHTTPException(413, detail=self._detail())
            return message

        await self.app(scope, limited_receive, send)

    def _detail(self) -> str:
        return f"The request body exceeds the limit of {self.max_bytes} bytes"
