"""The error hierarchy and its RFC 9457 ``application/problem+json`` document, framework-free.

Raise a subclass of ``AppError`` anywhere (services included: nothing here knows a web
framework); the web layer (``app/platform/web/problems.py``) turns it, request validation errors,
unknown routes, wrong methods and crashes into one shape:
``{"type", "title", "status", "detail", "instance", "request_id", ...extensions}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "/problems/"


class AppError(Exception):
    """A failure the client should be told about. ``slug`` becomes the stable problem type."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        commit: bool = False,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extensions = extensions
        # Most errors undo the request's work; a few must keep it while still failing the
        # request (a reused refresh token revokes its family, then answers 401).
        self.commit = commit


class BadRequest(AppError):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedBody(AppError):
    status, slug, title = 400, "malformed-body", "Malformed request body"


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(
        self, detail: str | None = None, *, commit: bool = False, **extensions: Any
    ) -> None:
        super().__init__(
            detail, headers={"WWW-Authenticate": "Bearer"}, commit=commit, **extensions
        )


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(AppError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class ValidationFailed(AppError):
    status, slug, title = 422, "validation-error", "Request validation failed"


class TooManyRequests(AppError):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **extensions: Any) -> None:
        super().__init__(
            detail,
            headers={"Retry-After": str(max(1, retry_after))},
            retry_after=retry_after,
            **extensions,
        )


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class GatewayTimeout(AppError):
    status, slug, title = 504, "timeout", "The operation timed out"


NUL_REFUSED = "string_nul"


def nul_refused(where: Sequence[str]) -> ValidationFailed:
    """The problem for a NUL character in ``where`` (``["query", "q"]``, ``["body"]``)."""
    loc = [str(part) for part in where]
    return ValidationFailed(
        "1 invalid field(s)",
        errors=[
            {
                "loc": loc,
                "field": ".".join(loc[1:]) or None,
                "msg": "NUL characters (\\u0000) are not accepted",
                "type": NUL_REFUSED,
            }
        ],
    )


def problem_body(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    **extensions: Any,
) -> bytes:
    """The problem document as JSON bytes; ``instance`` and ``request_id`` are extensions here
    (a stored answer, rendered outside any request, names them itself)."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    body.update(extensions)
    return json.dumps(body, default=str, separators=(",", ":")).encode()
